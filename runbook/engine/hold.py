"""The pytest plugin of a prepared session (`checkserver`): once pytest has read its configuration (arguments,
plugins, conftests), the session waits for the server's word to go on, so that a verifying phase that follows
another starts with that done. It waits before any plugin configures itself, so every time a report stamps
(pytest-html's and JUnit's start, the metadata's) is the phase's own.

It waits at most `SECONDS`; when the server closes the pipe instead (it died, or another session was asked
for), or the time is up, the session ends without running anything."""

import os
import select

import pytest

from runbook.engine.checkserver import GO

SECONDS = 3600
"""How long a prepared session waits for its phase: longer than any run's gap between two verifying phases."""
UNUSED = 75
"""The exit code of a session that ended without its word to go."""


class Hold:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        """The read end of the pipe the server writes `GO` to."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> None:
        ready, _, _ = select.select([self.fd], [], [], SECONDS)
        if not ready or os.read(self.fd, len(GO)) != GO:
            os._exit(UNUSED)
        os.close(self.fd)

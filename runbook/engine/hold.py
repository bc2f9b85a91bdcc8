"""The pytest plugin of a prepared session (`checkserver`): once pytest is configured, the session waits for the
server's word to go on, so that a verifying phase that follows another starts with its configuration done.

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

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        """After every other plugin's configuration, before the session starts (its stamps of time come after)."""
        ready, _, _ = select.select([self.fd], [], [], SECONDS)
        if not ready or os.read(self.fd, len(GO)) != GO:
            os._exit(UNUSED)
        os.close(self.fd)

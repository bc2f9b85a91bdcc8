"""The deadline a command on a host runs under: the phase it belongs to (set by the engine around each
phase, carried into `connection.each`'s threads), and the same deadline for the commands testinfra's
own modules run through its backend."""

import contextlib
import contextvars
import shlex
from typing import Iterator

from runbook.config import Host
from runbook.hosts import commands

BOUNDED = "timeout --kill-after="
"""How a command under a deadline begins (`commands.bounded`)."""

PHASE: contextvars.ContextVar[str | None] = contextvars.ContextVar("phase", default=None)
"""The phase whose commands run now: its deadline (`deadlines.phases`) applies to them."""


@contextlib.contextmanager
def in_phase(name: str) -> Iterator[None]:
    """Commands run inside are the phase `name`'s."""
    token = PHASE.set(name)
    try:
        yield
    finally:
        PHASE.reset(token)


def bound(remote, host: Host):
    """testinfra's own modules (`service`, `supervisor`, `file`) run commands through its backend, not
    `run`: each of those gets the phase's deadline too (a command `run` bounded already keeps its own)."""
    backend = remote.backend
    backend.runbook_deadlines = host.deadlines  # testinfra shares one backend per spec: the latest settings
    if getattr(backend, "runbook_bounded", False):
        return remote
    plain = backend.get_command

    def get_command(command: str, *args: str) -> str:
        text = plain(command, *args)
        if text.startswith(BOUNDED):
            return text
        _, seconds = backend.runbook_deadlines.for_command(None, PHASE.get())
        return shlex.join(commands.bounded(seconds, ["sh", "-c", text]))

    backend.get_command, backend.runbook_bounded = get_command, True
    return remote

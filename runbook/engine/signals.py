"""SIGTERM and Ctrl-C during a deploy or rollback are a failure of the running phase, not an exit:
the phase fails, and what its failure leads to (abandon, roll back) still happens. A signal that comes
between phases fails the next phase (none left: the run ends as it would have). Further signals are
ignored until the run has ended, so a rollback is never cut short by a second Ctrl-C."""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook import console


class Interrupted(BaseException):
    """The run was told to stop (SIGTERM or SIGINT). A BaseException, so that no `except Exception` in
    an action swallows it before the phase sees it."""


class _Signals:
    """Whether a phase is running (a signal then raises at once), a signal that came between phases, and
    the one raised in the running phase."""

    in_phase = False
    pending: Interrupted | None = None
    raised: Interrupted | None = None


def _children(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc (a command the phase runs here, its own children)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(signum: int, frame) -> None:
    for each in (signal.SIGTERM, signal.SIGINT):
        signal.signal(each, signal.SIG_IGN)
    for child in _children(os.getpid()):  # a command left running would go on changing the environment
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
    console.current().say(f"runbook: {signal.Signals(signum).name} received: the running phase fails and its "
                          "rollback, if any, runs to the end; further signals are ignored until then")
    interrupted = Interrupted(f"interrupted by {signal.Signals(signum).name}")
    if not _Signals.in_phase:  # raised here it would escape the phase's handling: the next phase fails instead
        _Signals.pending = interrupted
        return
    _Signals.raised = interrupted
    raise interrupted


@contextmanager
def in_phase() -> Iterator[None]:
    """The body of a phase: a signal raises `Interrupted` in it; one that came before it raises at its start.
    Should the body end without the one raised in it (code it ran caught it: a deploy went on to the end
    after saying that its phase failed), it is raised again at the body's end."""
    _Signals.in_phase = True
    try:
        pending, _Signals.pending = _Signals.pending, None
        if pending is not None:
            raise pending
        yield
        if _Signals.raised is not None:
            raise _Signals.raised
    finally:
        _Signals.in_phase, _Signals.raised = False, None


@contextmanager
def as_failures() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise `Interrupted` once, then are ignored."""
    before = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        _Signals.pending = None
        for each, handler in before.items():
            signal.signal(each, handler)

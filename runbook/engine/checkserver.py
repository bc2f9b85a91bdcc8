"""The checking process of a run: imports pytest, pytest-bdd and the step modules once, then for each
verifying phase forks a fresh child that runs that phase's pytest session and exits.

    python -m runbook.engine.checkserver      # requests on stdin, replies on stdout, one JSON line each

A fork copies the process as it was before any phase ran, so a phase's checks never see what an earlier
phase left in memory (only what the run context file says), while the imports are paid once per run, not
once per phase. Each child leads a session of its own, so the runbook can kill it and everything it
started with one `killpg` at the phase's deadline. The server never runs a check itself: it holds no
state a phase could change.

A request may name the session that will most likely be asked for next (`then`): while the requested one
runs, the server forks that one too, which reads pytest's configuration and waits (`hold`). When it is asked for with
the same arguments and output, it goes on from there; otherwise it is ended and a fresh child is forked.
"""

import contextlib
import gc
import importlib
import os
import signal
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

from pydantic import BaseModel, ConfigDict

from runbook import ROOT


class Session(BaseModel):
    """One pytest session: its arguments (without `python -m pytest`), its output file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    argv: list[str]
    output: str


class Request(Session):
    """Run this session now; prepare `then` while it runs."""

    then: Session | None = None


class Started(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pid: int
    """The child's process id, which is also its process group's."""


class Ended(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pid: int
    code: int
    """pytest's exit code, or minus the signal that ended the child."""


LATER = ("runbook.checks.ui.checks",)
"""Imported once the first session has forked, while it runs: no check of the first phase (the preflight, which
waits for `preload`) uses them; the later phases' sessions inherit them."""


STEPS: list[ModuleType] = []
"""The step modules the root conftest names, imported by `preload`. Each session is given them as plugins: pytest
then finds them registered under their names and does not look for each among every installed package's entry
points (eleven scans of site-packages, a tenth of a preflight's session)."""


def preload() -> None:
    """Import what every session imports: pytest with its own plugins, the plugins it loads from their entry
    points, and the step modules the root conftest names (`STEPS`); then freeze the heap, so a child's garbage
    collections (pytest runs several as it ends) skip what it inherited. The collector is off while it
    imports: its sweeps of the growing heap took a fifth of the time (0.56 s -> 0.45 s), and what they would
    free is frozen anyway."""
    gc.disable()
    import pytest  # noqa: F401 - imported for the children's sake
    from _pytest.config import default_plugins

    for name in default_plugins:
        importlib.import_module(f"_pytest.{name}")
    for plugin in entry_points(group="pytest11"):
        importlib.import_module(plugin.module)
    sys.path.insert(0, str(ROOT))
    conftest = importlib.import_module("conftest")
    STEPS.extend(importlib.import_module(name) for name in conftest.pytest_plugins)
    gc.freeze()
    gc.enable()


def _later() -> None:
    """Import `LATER`; one that cannot be imported is left for the session whose check needs it, which reports why."""
    for name in LATER:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    gc.freeze()


GO = b"go"
"""What the server writes to a prepared session's pipe when its phase asks for it."""


@dataclass
class Held:
    """A prepared session waiting for its word to go (`hold`)."""

    session: Session
    pid: int
    go: int
    """The write end of the pipe it waits on."""

    def waiting(self) -> bool:
        """Whether it still waits (one that ended is reaped)."""
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def start(self) -> int:
        os.write(self.go, GO)
        os.close(self.go)
        return self.pid

    def end(self) -> None:
        os.close(self.go)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def _fork(session: Session, pipe: tuple[int, int] | None = None) -> int:
    """A child running `session`; given a pipe, one that waits on its read end once pytest has read its
    configuration (`hold`)."""
    pid = os.fork()
    if pid == 0:
        if pipe is not None:
            os.close(pipe[1])
        _child(session, None if pipe is None else pipe[0])
    return pid


def _hold(session: Session) -> Held:
    read, write = os.pipe()
    pid = _fork(session, (read, write))
    os.close(read)
    return Held(session, pid, write)


def _child(session: Session, hold_fd: int | None) -> None:
    """In the forked child: a session of its own, output to the file, run pytest, exit with its code."""
    os.setsid()
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    out = os.open(session.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.chdir(ROOT)
    code = 3
    try:
        import pytest

        from runbook.engine.hold import Hold

        code = int(pytest.main(session.argv, plugins=[*STEPS, *([] if hold_fd is None else [Hold(hold_fd)])]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reply(message: BaseModel) -> None:
    sys.stdout.write(message.model_dump_json() + "\n")
    sys.stdout.flush()


def serve() -> None:
    """Answer requests until stdin closes: one child at a time, `Started` as it forks, `Ended` when it has. A
    prepared session left when the runbook is gone is ended and its output file removed."""
    preload()
    _reply(Started(pid=os.getpid()))  # ready
    later, held = True, None
    try:
        for line in sys.stdin:
            request = Request.model_validate_json(line)
            asked = Session(argv=request.argv, output=request.output)
            if held is not None and held.session == asked and held.waiting():
                pid = held.start()
            else:
                if held is not None:
                    held.end()
                pid = _fork(asked)
            held = None
            _reply(Started(pid=pid))
            if later:
                _later()
                later = False
            if request.then is not None:
                held = _hold(request.then)
            _, status = os.waitpid(pid, 0)
            _reply(Ended(pid=pid, code=os.waitstatus_to_exitcode(status)))
    finally:  # the runbook is gone (stdin closed, or its end of stdout): so is what it would have asked for
        if held is not None:
            held.end()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(held.session.output)


if __name__ == "__main__":
    serve()

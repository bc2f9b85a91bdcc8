"""The runbook's side of the checking process (`checkserver`): started once per run, early, so its imports
overlap the run's first phases; each verifying phase is one request, run under the phase's deadline.

Any fault (the deadline, an interrupt, a server that died or answers out of turn) kills the phase's child
and the server with it; the next phase starts a new server, so one broken session never leaks into the next.
"""

import atexit
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from runbook import ROOT, processes

if TYPE_CHECKING:
    from runbook.engine.checkserver import Session

FOLDERS = "runbook-checks-"
"""The name of each runbook process's folder of session outputs in the system's temporary folder starts so,
followed by the process id."""
READY_SECONDS = 60
"""How long the server may take to import what the checks need."""
REPLY_SECONDS = 10
"""How long it may take to answer once its child has forked or been killed."""
POLL = 0.2


class CheckerFailed(Exception):
    """The checking process did not answer as it must; the phase's checks could not run."""


class Checker:
    def __init__(self) -> None:
        self.server: subprocess.Popen | None = None
        self.ready = False
        self.child: int | None = None
        self.prepared: "Session | None" = None
        """The session the server holds ready for the next phase."""
        self.folder: Path | None = None
        """Where the sessions' output files are, only this user's (`FOLDERS`)."""
        self.pending = b""
        atexit.register(self.stop)

    def warm(self) -> None:
        """Start the server unless one runs; it imports while the run goes on."""
        if self.server is None or self.server.poll() is not None:
            self._drop_prepared()
            _sweep()
            self.server = subprocess.Popen([sys.executable, "-m", "runbook.engine.checkserver"], cwd=ROOT,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
            self.ready, self.pending = False, b""

    def run(self, argv: list[str], seconds: float, shown: Callable[[str], None],
            then: list[str] | None = None) -> int | None:
        """Run one pytest session; its exit code, or None when it was stopped at `seconds`. Its output is
        passed to `shown` as it is written. `then`: the arguments of the session most likely asked for next,
        which the server prepares while this one runs."""
        self.warm()
        from runbook.engine.checkserver import Request, Session, Started  # pydantic, once the server is starting

        output = self._output(argv)
        following = Session(argv=then, output=str(self._private_file())) if then is not None else None
        try:
            if not self.ready:
                Started.model_validate_json(self._line(READY_SECONDS))
                self.ready = True
            request = Request(argv=argv, output=str(output), then=following)
            self.server.stdin.write(request.model_dump_json().encode() + b"\n")
            self.child = Started.model_validate_json(self._line(REPLY_SECONDS)).pid
            code = self._wait(output, time.monotonic() + seconds, shown)
        except BaseException:
            if following is not None:
                Path(following.output).unlink(missing_ok=True)
            self.stop()
            raise
        finally:
            output.unlink(missing_ok=True)
        self.child, self.prepared = None, following
        return code

    def _output(self, argv: list[str]) -> Path:
        """The output file of the session of `argv`: the prepared session's when it is that one (a prepared
        one not asked for is dropped), else a new one."""
        if self.prepared is not None and self.prepared.argv == argv:
            output, self.prepared = Path(self.prepared.output), None
            return output
        self._drop_prepared()
        return self._private_file()

    def _private_file(self) -> Path:
        """A new empty file for a session's output, in this process's folder (0700, made on first use)."""
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix=f"{FOLDERS}{os.getpid()}-"))
        fd, name = tempfile.mkstemp(dir=self.folder, suffix=".out")
        os.close(fd)
        return Path(name)

    def _drop_prepared(self) -> None:
        if self.prepared is not None:
            Path(self.prepared.output).unlink(missing_ok=True)
            self.prepared = None

    def _wait(self, output: Path, deadline: float, shown: Callable[[str], None]) -> int | None:
        """Follow the child's output until the server says it ended; at the deadline, kill its group."""
        from runbook.engine.checkserver import Ended

        offset = 0
        while True:
            line = self._line(POLL, expected=False)
            offset = _follow(output, offset, shown)
            if line is not None:
                return Ended.model_validate_json(line).code
            if time.monotonic() > deadline:
                _kill_group(self.child)
                Ended.model_validate_json(self._line(REPLY_SECONDS))
                return None

    def _line(self, seconds: float, expected: bool = True) -> bytes | None:
        """The server's next reply line within `seconds`; None when none came and none was `expected`."""
        until = time.monotonic() + seconds
        while b"\n" not in self.pending:
            left = until - time.monotonic()
            ready, _, _ = select.select([self.server.stdout], [], [], max(left, 0))
            if not ready:
                if expected:
                    raise CheckerFailed(f"the checking process did not answer within {seconds} s")
                return None
            data = os.read(self.server.stdout.fileno(), 65536)
            if not data:
                raise CheckerFailed(f"the checking process ended (exit code {self.server.wait(REPLY_SECONDS)})")
            self.pending += data
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def stop(self) -> None:
        """End the server, and the phase's child if one runs (a prepared session ends with the server); remove
        the sessions' output folder."""
        self._drop_prepared()
        server, child, self.server, self.child = self.server, self.child, None, None
        if child is not None:
            _kill_group(child)
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(REPLY_SECONDS)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _follow(output: Path, offset: int, shown: Callable[[str], None]) -> int:
    """Pass what was written to `output` since `offset` to `shown`, whole lines only; the new offset."""
    try:
        with output.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    whole = data[:data.rfind(b"\n") + 1]
    if whole:
        shown(whole.decode(errors="replace"))
    return offset + len(whole)


def _sweep() -> None:
    """Remove the output folders of runbook processes that are gone: one killed with its checking process (a
    SIGKILL to its whole group) could not remove its own."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDERS}*-*"):
        pid = folder.name[len(FOLDERS):].split("-")[0]
        if pid.isdigit() and folder.is_dir() and not processes.alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # it has ended already
        pass


CHECKER = Checker()
"""The run's checking process: a run is one runbook process."""

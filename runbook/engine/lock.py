"""One deploy or rollback at a time per environment: a lock file on the environment's primary host.

The file is created with the shell's noclobber (an exclusive create), so two runs, from this machine
or another, cannot both take it. It says who holds it, since when, from which machine and process.
"""

import os
import socket

from pydantic import BaseModel, ConfigDict

from runbook.hosts import connection
from runbook.engine import state
from runbook.config import Environment
from runbook.errors import RunbookError


class Holder(BaseModel):
    """Who holds the lock: the run, its operator, the machine and process it runs in, since when."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    operator: str
    runner: str
    pid: int
    since: str

    def __str__(self) -> str:
        return f"run {self.run_id} of {self.operator}, since {self.since}, from {self.runner} process {self.pid}"

    @property
    def stale(self) -> bool | None:
        """True when its process is gone; None when it runs on another machine (cannot tell from here)."""
        if self.runner != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def path(env: Environment) -> str:
    return str(env.app.root / "runbook.lock")


def holder(env: Environment) -> Holder | None:
    text = connection.read(state.primary(env), path(env))
    return Holder.model_validate_json(text) if text else None


def acquire(env: Environment, me: Holder, break_stale: bool = False) -> None:
    """Take the lock, or refuse (exit 2) naming who holds it; `break_stale` removes a stale one first."""
    host = state.primary(env)
    connection.must(host, 'mkdir -p -- "$1"', str(env.app.root), what="creating the app folder")
    current = holder(env)
    if current is not None and break_stale:
        if current.stale is False:
            raise RunbookError(f"the lock of {env.name} is held by {current}, which is still running: not broken")
        connection.must(host, 'rm -f -- "$1"', path(env), what="breaking the stale lock")
    result = connection.script(host, 'set -C; printf %s "$2" > "$1"', path(env), me.model_dump_json())
    if result.rc != 0:
        current = holder(env)
        if current is None:
            raise RunbookError(f"cannot take the lock of {env.name} at {path(env)} on {host.name}: {result.stderr.strip()}")
        raise RunbookError(f"{env.name} is locked by {current}{_stale_hint(current)}")


def _stale_hint(current: Holder) -> str:
    if current.stale:
        return "; that process is gone: the lock is stale (break it with --break-lock)"
    if current.stale is None:
        return "; it runs on another machine (if it is gone, break the lock with --break-lock)"
    return ""


def release(env: Environment, run_id: str) -> None:
    """Remove the lock if this run holds it."""
    current = holder(env)
    if current is not None and current.run_id == run_id:
        connection.must(state.primary(env), 'rm -f -- "$1"', path(env), what="removing the lock")


def describe(env: Environment) -> str:
    current = holder(env)
    if current is None:
        return "free"
    return f"held by {current}" + (" (stale: its process is gone)" if current.stale else "")

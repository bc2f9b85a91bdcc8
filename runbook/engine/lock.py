"""One deploy or rollback at a time per environment, and what it set out to do: the lock file on the
environment's primary host holds the run's holder and its intent in one record.

The file is created whole or not at all (written and flushed beside it, then hard-linked into place,
which fails when it exists), so two runs, from this machine or another, cannot both take it, and no
moment exists in which a lock says nothing of its run. Each phase rewrites it (beside it, then renamed
over it) before it acts; the run removes it as its very last change.
"""

import socket

from pydantic import BaseModel, ConfigDict

from runbook import processes
from runbook.config import Environment
from runbook.engine import state
from runbook.errors import RunbookError
from runbook.hosts import commands, connection, runner


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
        return not processes.alive(self.pid)


class Intent(BaseModel):
    """What the run holding the lock changes, as known before the phase it is in acted."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    """deploy or rollback."""
    version: str | None
    phase: str
    """The phase about to act (or acting) when this was written."""
    sequence: str
    """deploy, or rollback (a deploy's own rollback, or a manual one)."""
    release: str | None
    """A deploy: the release it creates. A rollback: the release it leaves."""
    created: bool = False
    """The deploy created `release`'s folder on the hosts (so undoing it removes the folder)."""
    return_to: str | None
    """The release that serves when the run is undone or done: the deploy's previous, the rollback's target."""
    return_schema: str | None
    """The schema version that goes with `return_to`."""
    backup: dict | None = None
    """The backup this run took (path, format, tables, ...), for a restore."""
    snapshot: dict | None = None
    """The protected tables' rows before the run changed anything."""


class Lock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holder: Holder
    intent: Intent

    def __str__(self) -> str:
        return str(self.holder)


def path(env: Environment) -> str:
    return str(env.app.root / "runbook.lock")


def read(env: Environment) -> Lock | None:
    text = connection.read(state.primary(env), path(env))
    return Lock.model_validate_json(text) if text else None


def acquire(env: Environment, lock: Lock) -> None:
    """Take the lock with the run's first intent, or refuse (exit 2) naming who holds it."""
    host = state.primary(env)
    runner.must(host, commands.make_folders(str(env.app.root)), what="creating the app folder")
    if not connection.put(host, path(env), lock.model_dump_json(indent=2).encode(), 0o640, exclusive=True):
        current = read(env)
        raise RunbookError(f"{env.name} is locked by {current}{_stale_hint(current.holder) if current else ''}")


def take_over(env: Environment, lock: Lock, crashed: Lock) -> None:
    """Replace a stale lock by this run's (carrying the crashed run's intent); refused while its run lives."""
    if crashed.holder.stale is False:
        raise RunbookError(f"the lock of {env.name} is held by {crashed}, which is still running: not broken")
    update(env, lock)


def update(env: Environment, lock: Lock) -> None:
    """Rewrite the lock with the intent of the phase about to act, whole or not at all."""
    connection.put(state.primary(env), path(env), lock.model_dump_json(indent=2).encode(), 0o640)


def _stale_hint(current: Holder) -> str:
    if current.stale:
        return "; that process is gone: the lock is stale (recover with --break-lock)"
    if current.stale is None:
        return "; it runs on another machine (if it is gone, recover with --break-lock)"
    return ""


def release(env: Environment, run_id: str) -> None:
    """Remove the lock if this run holds it."""
    current = read(env)
    if current is not None and current.holder.run_id == run_id:
        runner.must(state.primary(env), commands.remove_files(path(env)), what="removing the lock")


def describe(env: Environment) -> str:
    current = read(env)
    if current is None:
        return "free"
    return f"held by {current}" + (" (stale: its process is gone)" if current.holder.stale else "")

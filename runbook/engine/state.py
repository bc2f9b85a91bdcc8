"""What the environment itself remembers, on its primary host: `<app root>/runbook-state.json`.

    history      releases that went live, oldest first, each with its version and schema version
    in_progress  the run changing the environment now (or a run that crashed while doing so)
    last_run     how the last deploy or rollback ended

Kept on the environment rather than beside the runner, so every operator's machine sees the same.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runbook.hosts import connection
from runbook.config import Environment, Host
from runbook.secrets import redact


@dataclass
class Live:
    release: str
    version: str
    schema: str | None
    run_id: str
    at: str


@dataclass
class InProgress:
    run_id: str
    kind: str
    version: str | None
    release: str | None
    previous_release: str | None
    previous_schema: str | None
    backup: dict | None
    """The backup this run took (path, format, tables, ...), for a restore after a crash."""
    phase: str
    operator: str
    runner: str
    pid: int
    started: str


@dataclass
class State:
    history: list[Live] = field(default_factory=list)
    in_progress: InProgress | None = None
    last_run: dict | None = None

    @property
    def live(self) -> Live | None:
        return self.history[-1] if self.history else None

    def entry(self, release: str) -> Live | None:
        return next((e for e in reversed(self.history) if e.release == release), None)


def primary(env: Environment) -> Host:
    """The host that keeps the state and the lock: the first with the migrate role, else the first app host."""
    return (env.hosts_with("migrate") or env.hosts_with("app"))[0]


def path(env: Environment) -> str:
    return str(env.app.root / "runbook-state.json")


def load(env: Environment) -> State:
    text = connection.read(primary(env), path(env))
    if not text:
        return State()
    data = json.loads(text)
    progress = data.get("in_progress")
    return State(
        history=[Live(**e) for e in data.get("history", [])],
        in_progress=InProgress(**progress) if progress else None,
        last_run=data.get("last_run"),
    )


def save(env: Environment, state: State) -> None:
    connection.put(primary(env), path(env), json.dumps(asdict(state), indent=2).encode(), 0o640)


class Journal:
    """The run's events, one JSON line each, flushed to disk as they happen: what a crash leaves behind."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "journal.jsonl"

    def write(self, event: dict) -> None:
        with self.path.open("a") as out:
            out.write(redact(json.dumps(event)) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def events(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

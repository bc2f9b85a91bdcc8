"""What the environment itself remembers, on its primary host: `<app root>/runbook-state.json`.

    history      releases that went live, oldest first, each with its version and schema version
    last_run     how the last deploy or rollback ended

Kept on the environment rather than beside the runner, so every operator's machine sees the same. The
run changing the environment now (or one that was killed doing so) is in the lock (`engine/lock.py`).
"""

from pydantic import BaseModel, ConfigDict, Field

from runbook.config import Environment, Host
from runbook.hosts import connection


class Stored(BaseModel):
    """A part of the state file: unknown keys are refused, so a hand-edited file fails loudly."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Live(Stored):
    """A release that went live."""

    release: str
    version: str
    schema_version: str | None = Field(alias="schema")
    run_id: str
    at: str
    backup: dict | None = None
    """The backup the deploy that made it live took before (`backup.Backup`): what a rollback from it restores."""
    files: dict[str, str] = {}
    """Per app host, `releases.files_state` of the release just before prepare checked its files: a rollback
    to it reads them all again only where this differs (or is not recorded)."""


class LastRun(Stored):
    """How the last deploy or rollback ended."""

    run_id: str
    kind: str
    version: str | None
    outcome: str
    operator: str
    finished: str


class State(BaseModel):
    """The state file; keys of older versions (`in_progress`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    history: list[Live] = []
    last_run: LastRun | None = None

    @property
    def live(self) -> Live | None:
        return self.history[-1] if self.history else None

    def entry(self, release: str) -> Live | None:
        return next((e for e in reversed(self.history) if e.release == release), None)

    def forget_all_but(self, releases: set[str]) -> bool:
        """Keep the history of these releases only (those still on the hosts: no rollback can return to a
        pruned one), so the file stays the size of `keep_releases` entries however many deploys ran; whether
        any entry was dropped."""
        kept = [e for e in self.history if e.release in releases]
        dropped, self.history = len(kept) != len(self.history), kept
        return dropped


def primary(env: Environment) -> Host:
    """The host that keeps the state and the lock: the first with the migrate role, else the first app host."""
    return (env.hosts_with("migrate") or env.hosts_with("app"))[0]


def path(env: Environment) -> str:
    return str(env.app.root / "runbook-state.json")


def load(env: Environment) -> State:
    text = connection.read(primary(env), path(env))
    return State.model_validate_json(text) if text else State()


def save(env: Environment, state: State) -> None:
    connection.put(primary(env), path(env), state.model_dump_json(indent=2, by_alias=True).encode(), 0o640)

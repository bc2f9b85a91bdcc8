"""`invoke status`: what an environment runs now and what happened to it last, from the environment
itself (its links, its database, its lock and state files), so every operator's machine sees the same.
"""

from pydantic import BaseModel

from runbook.database import queries
from runbook.engine import lock, state
from runbook.environments import open_environment
from runbook.release import releases


class LiveRelease(BaseModel):
    release: str
    version: str
    run_id: str


class UnfinishedRun(BaseModel):
    """A run that stopped without finishing: where it stopped, among the phases of its sequence."""

    run_id: str
    kind: str
    version: str | None
    phase: str
    phases: list[str]
    since: str
    operator: str
    running: bool | None
    """True while its process runs; False when it is gone (killed); None: it runs on another machine."""


class Status(BaseModel):
    environment: str
    current: dict[str, str | None]
    """The release `current` points at on each app host."""
    live: LiveRelease | None
    previous: str | None
    schema_version: str | None
    lock: str
    last_run: state.LastRun | None
    unfinished_run: UnfinishedRun | None

    def text(self) -> str:
        """The status for people, one fact a line."""
        live, last, crashed = self.live, self.last_run, self.unfinished_run
        lines = [
            f"environment: {self.environment}",
            "current:     " + ", ".join(f"{h}: {r or 'none'}" for h, r in self.current.items()),
            f"live:        {f'{live.release} ({live.version})' if live else 'none'}",
            f"previous:    {self.previous or 'none'}",
            f"schema:      {self.schema_version or 'none'}",
            f"lock:        {self.lock}",
            f"last run:    {f'{last.kind} {last.version or str()}: {last.outcome} ({last.run_id})' if last else 'none'}",
        ]
        if crashed and crashed.running:
            lines.append(f"RUNNING:     {crashed.kind} {crashed.version or ''} run {crashed.run_id} in phase "
                         f"'{crashed.phase}' (phases: {' > '.join(crashed.phases)})")
        elif crashed:
            what = f"{crashed.kind} {crashed.version or ''}".strip()
            lines.append(f"UNFINISHED:  {what} run {crashed.run_id} stopped during '{crashed.phase}' "
                         f"(phases: {' > '.join(crashed.phases)}); "
                         f"bring it back with: invoke rollback --env {self.environment} --break-lock")
        return "\n".join(lines)


def _phases(env, sequence: str) -> list[str]:
    """The phase names of a run's sequence; the sequences (and all the engine behind them) load only here."""
    from runbook.engine.sequences import deploy_sequence, rollback_sequence

    return [p.name for p in (deploy_sequence if sequence == "deploy" else rollback_sequence)(env)]


def collect(env_arg: str) -> Status:
    """Current and previous releases, schema version, lock, the last run, and a run that did not finish;
    read only: nothing is started, stopped or changed."""
    env = open_environment(env_arg, start_local=False)
    found = state.load(env)
    earlier = found.history[:-1]
    held = lock.read(env)
    return Status(
        environment=env.name,
        current={h.name: releases.current(env, h) for h in env.hosts_with("app")},
        live=found.live and LiveRelease(release=found.live.release, version=found.live.version,
                                        run_id=found.live.run_id),
        previous=earlier[-1].release if earlier else None,
        schema_version=queries.schema_version_or_why(env),
        lock=lock.describe(env),
        last_run=found.last_run,
        unfinished_run=held and UnfinishedRun(
            run_id=held.holder.run_id, kind=held.intent.kind, version=held.intent.version, phase=held.intent.phase,
            phases=_phases(env, held.intent.sequence),
            since=held.holder.since, operator=held.holder.operator,
            running=None if held.holder.stale is None else not held.holder.stale),
    )

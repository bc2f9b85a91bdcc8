"""The state of one deploy or rollback as it goes, each field set by the phase named beside it."""

from dataclasses import dataclass, field
from pathlib import Path

from runbook.config import Environment, Host
from runbook.engine.context import BaselineFigures, RunContext
from runbook.engine.lock import Intent, Lock
from runbook.engine.planner import Plan
from runbook.engine.undo import Undo
from runbook.engine.run import Run
from runbook.release import releases
from runbook.watch.bake import Baseline


@dataclass
class Deployment:
    """What a deploy or rollback knows as it goes; the record and the environment's state keep it."""

    run: Run
    restore_db: bool = False
    """Asked for by the operator (or chosen by the plan, when nothing else can work): a rollback restores the
    pre-deploy backup instead of down migrations."""
    accept_loss: bool = False
    """`--accept-loss`: the operator accepts the writes a restore of the backup discards (strict environments)."""
    break_lock: bool = False
    """Asked for by the operator: `lock` breaks a stale lock and recovers the crashed run."""
    requested_target: str | None = None
    """`rollback --to`: the release the operator asked to return to."""
    change: str | None = None
    """`--change`: the change ticket the run is for (a deploy's is the one it was approved under)."""
    package: Path | None = None
    """The package being deployed (set by the entry point)."""
    locked: bool = False
    """lock: this run holds the environment's lock."""
    release: str | None = None
    """lock (deploy) / plan (rollback): the release this run creates, or the one it leaves."""
    previous: str | None = None
    """lock: the release live before this deploy."""
    previous_schema: str | None = None
    """lock: the schema version before this deploy."""
    target: str | None = None
    """lock / plan: the release a rollback returns to."""
    target_schema: str | None = None
    """lock / plan: the schema version a rollback returns to."""
    reason: str | None = None
    """plan, or the failed phase: why a rollback runs."""
    baseline: Baseline | None = None
    """baseline: the serving release measured before anything changed."""
    backup: dict | None = None
    """backup: the dump's path, format, tables and checksum, for a restore."""
    snapshot: dict | None = None
    """backup: the protected tables' rows before anything changed."""
    prepared: bool = False
    """prepare: this run created `release` on the hosts (so abandoning it removes the folder)."""
    files_states: dict[str, str] = field(default_factory=dict)
    """prepare: per app host, `releases.files_state` of the release just before its files were checked."""
    batch: list[Host] | None = None
    """The app hosts the host-by-host phases act on now: a batch of the rollout, or during a rollback
    the hosts the deploy changed; None: every app host."""
    touched: list[Host] = field(default_factory=list)
    """stop / switch / start: app hosts whose services this deploy stopped or whose release it switched."""
    failed_hosts: dict[str, str] = field(default_factory=dict)
    """hosts: hosts that failed their health check within the rollout's `max_fail_percentage`, and why."""
    rolling_back: bool = False
    """The deploy failed and its rollback runs: the hosts it acts on are no longer `touched`."""
    recovering: Lock | None = None
    """lock, with `--break-lock`: the killed run's lock, whose intent this run finishes or undoes."""
    nothing_to_do: str | None = None
    """lock / plan: why this rollback changes nothing (no crashed run, or one that changed nothing)."""
    plan: Plan | None = None
    """plan: the database rollback chosen, and what it costs."""
    migrating: bool = False
    """migrate: the run was interrupted (SIGTERM, SIGINT) while the release's migrate command ran: the
    command may still be running on the host, so the schema read now may change yet."""
    undo: Undo | None = None
    """plan, when recovering: what the killed run left to undo, read from the hosts (None: undo it all)."""
    refused: str | None = None
    """Why the run was refused (exit 2): nothing changed."""
    needs_human: str | None = None
    """Why a human is needed (exit 3), the state and the command to run next."""

    @property
    def env(self) -> Environment:
        return self.run.env

    @property
    def hosts(self) -> list[Host]:
        return self.env.hosts_with("app") if self.batch is None else self.batch

    @property
    def verifying_version(self) -> str | None:
        """The version the health and status checks expect: the new one, or the one rolled back to."""
        if self.run.kind == "rollback" or self.rolling_back:
            return releases.version_of(self.target) if self.target else None
        return self.run.version

    def touch(self, hosts: list[Host]) -> None:
        """Remember hosts a deploy changes: its rollback acts on them alone."""
        if self.run.kind == "deploy" and not self.rolling_back:
            self.touched += [h for h in hosts if h not in self.touched]

    def intent(self, phase: str, sequence: str) -> Intent:
        """What this run changes, as known before `phase` acts (written into the lock)."""
        rollback = self.run.kind == "rollback"
        return Intent(kind=self.run.kind, version=self.run.version, phase=phase, sequence=sequence,
                      release=self.release, created=self.prepared,
                      return_to=self.target if rollback or self.rolling_back else self.previous,
                      return_schema=self.target_schema if rollback or self.rolling_back else self.previous_schema,
                      backup=self.backup, snapshot=self.snapshot)

    def context(self) -> RunContext:
        """What the verifying features need to know about this run."""
        baseline = self.baseline and BaselineFigures(p95_seconds=self.baseline.p95_seconds,
                                                      error_rate=self.baseline.error_rate)
        change = self.change or self.run.facts.get("approval", {}).get("change")
        return RunContext(release=self.release, version=self.run.version, change=change, target=self.target,
                          target_schema=self.target_schema, snapshot=self.snapshot, baseline=baseline,
                          local_up=self.run.local_up)

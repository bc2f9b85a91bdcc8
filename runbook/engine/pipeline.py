"""The runbook's deploy and rollback as data, in runbook order, and the engine that walks them.

Each phase is an action on the environment and/or a feature that verifies it. `deploy`, `rollback`,
`status` and the record all read `deploy_sequence` and `rollback_sequence` (which depend on the
environment's rollout strategy); nothing else states the order.

A failure before anything changed releases what the run took and ends with exit 1. A failure from
the first phase that changes the environment on is followed by the rollback sequence: exit 1 when
the previous release serves again, exit 3 when the rollback failed too and a human is needed.
"""

import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from runbook.governance import approval, notify
from runbook.database import backup, queries, migrations
from runbook.release import configfiles, package, releases, rollout, services
from runbook import errors
from runbook.record import history, incident, report, signing
from runbook.hosts import connection
from runbook.engine import lock, state
from runbook.watch import charts, metrics, windows
from runbook.checks import smoke
from runbook.config import Host, Service
from runbook.errors import ActionFailed, CheckFailed, RunbookError
from runbook.findings import require
from runbook.engine.run import PhaseResult, Run, start, summary, timestamp, utc_now, verify
from runbook.secrets import redact


@dataclass
class Deployment:
    """What a deploy or rollback knows as it goes; the record and the environment's state keep it."""

    run: Run
    restore_db: bool = False
    break_lock: bool = False
    requested_target: str | None = None
    package: Path | None = None
    release: str | None = None
    previous: str | None = None
    previous_schema: str | None = None
    backup: dict | None = None
    snapshot: dict | None = None
    target: str | None = None
    target_schema: str | None = None
    reason: str | None = None
    baseline: windows.Baseline | None = None
    """The release's baseline, measured before anything changed."""
    locked: bool = False
    prepared: bool = False
    """This run created `release` on the hosts (so abandoning it removes the folder)."""
    batch: list[Host] | None = None
    """The app hosts the host-by-host phases act on now: a batch of the rollout, or during a rollback
    the hosts the deploy changed; None: every app host."""
    touched: list[Host] = field(default_factory=list)
    """App hosts whose services this deploy stopped or whose release it switched, in that order."""
    failed_hosts: dict[str, str] = field(default_factory=dict)
    """Hosts that failed their health check within the rollout's `max_fail_percentage`, and why."""
    rolling_back: bool = False
    """The deploy failed and its rollback runs: the hosts it acts on are no longer `touched`."""

    @property
    def env(self):
        return self.run.env

    @property
    def hosts(self) -> list[Host]:
        return self.env.hosts_with("app") if self.batch is None else self.batch

    def touch(self, hosts_: list[Host]) -> None:
        """Remember hosts a deploy changes: its rollback acts on them alone."""
        if self.run.kind == "deploy" and not self.rolling_back:
            self.touched += [h for h in hosts_ if h not in self.touched]

    def context(self) -> dict:
        """What the verifying features need to know about this run (passed as `--context`)."""
        return {
            "release": self.release, "version": self.run.version, "target": self.target,
            "target_schema": self.target_schema, "snapshot": self.snapshot,
            "baseline": self.baseline and {"p95_seconds": self.baseline.p95_seconds,
                                           "error_rate": self.baseline.error_rate},
        }


Action = Callable[[Deployment], list[str]]
ABANDON, ROLL_BACK, REPORT = "abandon", "roll back", "report"


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    action: Action | None = None
    feature: str | None = None
    """The Gherkin tag of the scenarios that verify this phase."""
    on_failure: str = ABANDON
    """ABANDON: nothing changed yet, release what the run took. ROLL_BACK: the environment changed, the
    rollback sequence follows. REPORT: the release is live and verified; say what did not finish."""
    applies: Callable[[Deployment], bool] = field(default=lambda d: True)
    skip: str = "does not apply: no release was live before this deploy"
    """What the record says when `applies` is false."""
    per_batch: bool = False
    """Runs once for each batch of the rollout, on that batch's hosts (`Deployment.hosts`)."""


# --- actions -----------------------------------------------------------------------------------------


def take_lock(d: Deployment) -> list[str]:
    """Take the environment's lock; a crashed run found on the environment is reported, never ignored."""
    env, run = d.env, d.run
    if d.locked:
        return [f"this run already holds the lock of {env.name}"]
    me = lock.Holder(run.id, run.operator, run.runner, run.pid, timestamp(run.started))
    lock.acquire(env, me, break_stale=d.break_lock)
    d.locked = True
    found = state.load(env)
    notes = [f"lock of {env.name} taken by {me}"]
    if found.in_progress and found.in_progress.run_id != run.id:
        crashed = found.in_progress
        what = f"{crashed.kind} of {crashed.version}" if crashed.version else crashed.kind
        description = (f"run {crashed.run_id} ({what}) by {crashed.operator} stopped "
                       f"during phase '{crashed.phase}' without finishing; {where(env)}")
        run.facts["crashed_run"] = {"run_id": crashed.run_id, "phase": crashed.phase, "description": description}
        if run.kind == "deploy":
            raise RunbookError(f"{description}. Bring it back with: invoke rollback --env {env.name} --break-lock")
        d.target, d.target_schema = crashed.previous_release, crashed.previous_schema
        d.release, d.backup = crashed.release, crashed.backup
        d.reason = f"recovering from {description}"
        notes.append(description)
    if run.kind == "deploy":
        d.previous = releases.current(env, state.primary(env))
        d.previous_schema = queries.schema_version(env)
        d.release = releases.name(run.version, run.started)
        d.target, d.target_schema = d.previous, d.previous_schema
        notes.append(f"live release before this deploy: {d.previous or 'none'}, schema {d.previous_schema or 'none'}")
    _progress(d, "lock")
    return notes


def where(env) -> str:
    """The environment's state in one sentence, for people deciding what to do next."""
    host = state.primary(env)
    return (f"current release on {host.name}: {releases.current(env, host) or 'none'}, "
            f"database schema: {queries.schema_version(env) or 'none'}")


def _notify(d: Deployment, event: str, reason: str = "") -> list:
    """Tell the environment's notification targets; every delivery, good or bad, goes in the report."""
    run = d.run
    message = notify.compose(event, run.env.name, run.version or (d.target and releases.version_of(d.target)) or "",
                             run.id, run.operator, reason, link=str(run.folder / "index.html"))
    deliveries = notify.send(run.env, message)
    run.facts.setdefault("notifications", []).extend(x.as_record() for x in deliveries)
    return deliveries


def announce(d: Deployment) -> list[str]:
    """Step 6: notify stakeholders and status pages that maintenance begins; a required target that
    cannot be told stops the deploy before anything changes."""
    deliveries = _notify(d, "started")
    failures = notify.required_failures(deliveries, d.env)
    if failures:
        raise ActionFailed("; ".join(failures))
    return [str(x) for x in deliveries] or ["no notification target is configured"]


def measure_baseline(d: Deployment) -> list[str]:
    """Step 20's baseline: error rate and p95 latency of the release serving now, before any change."""
    d.baseline = windows.baseline(d.env, metrics.source(d.env))
    d.run.facts["baseline"] = d.baseline.as_record()
    rate, p95 = d.baseline.error_rate, d.baseline.p95_seconds
    return [f"baseline over {d.env.watch.baseline_seconds:g} s: error rate {metrics.percent(rate)}, "
            f"p95 latency {metrics.milliseconds(p95)} ({len(d.baseline.samples)} samples)"]


def bake_release(d: Deployment) -> list[str]:
    """Steps 13, 14 and 20: watch the verified release against its baseline; a sustained trigger fails
    the phase, and the rollback follows."""
    env = d.env
    before = d.baseline or windows.baseline(env, metrics.source(env))
    smoke_check = (lambda: bool(smoke.log_in(env))) if env.endpoints.smoke else None
    result = windows.bake(env, metrics.source(env), before, smoke=smoke_check)
    (d.run.folder / "bake.svg").write_text(charts.bake_chart(before, result, env))
    d.run.facts["bake"] = result.as_record() | {"chart": "bake.svg"}
    summary = f"{len(result.samples)} samples over {env.watch.bake_seconds:g} s at most"
    if result.fired:
        raise ActionFailed(f"trigger fired: {result.fired} (condition true since "
                           f"{result.fired.as_record()['since']}); {summary}")
    return [f"no trigger fired: {summary}"]


def take_backup(d: Deployment) -> list[str]:
    """Snapshot the protected tables, then dump the database (Step 3)."""
    env = d.env
    d.snapshot = queries.snapshot(env, env.rollback.protected_tables)
    taken = backup.take(env, d.release or f"{d.run.started:%Y%m%dT%H%M%SZ}-manual")
    d.backup = taken.as_record()
    d.run.facts["backup"] = d.backup
    d.run.facts["snapshot"] = {table: {"rows": t["rows"]} for table, t in d.snapshot.items()}
    return [f"{taken.format}-format dump {taken.path} on {taken.host}: {taken.size_bytes} bytes, sha256 {taken.sha256}",
            f"pg_restore --list lists all {len(taken.tables)} tables: {', '.join(taken.tables)}"]


def prepare_release(d: Deployment) -> list[str]:
    """Copy the verified package to every app host (`shared/packages/`, rsync over ssh) and unpack it into
    a new release folder there, services untouched."""
    env, notes = d.env, []
    contents = package.read(d.package)
    findings = package.presence(contents) + package.integrity(contents) + package.unlisted_files(contents)
    require(findings + [package.version_matches(contents, d.run.version)])
    notes.append(f"package {d.package} sha256 {package.checksum(d.package)} verified against its manifest")
    d.run.facts["package"] = {"path": str(d.package), "sha256": package.checksum(d.package)}
    d.prepared = True
    packages = env.app.shared / "packages"
    on_host = str(packages / d.package.name)

    def one(host: Host) -> list[str]:
        done = [f"removed unfinished release {gone} on {host.name}, left by a crashed run"
                for gone in releases.clean_unfinished(env, host)]
        connection.copy(host, d.package, on_host)
        connection.must(host, 'find "$1" -maxdepth 1 -type f ! -name "$2" -delete', str(packages), d.package.name,
                   what="removing the packages of earlier deploys")
        done.append(f"package copied to {host.name}:{on_host}")
        releases.unpack(env, host, on_host, d.release)
        done.append(releases.verify_files(env, host, d.release))
        releases.finish(env, host, d.release)
        return done

    return notes + [line for done in connection.each(env.hosts_with("app"), one) for line in done]


def _placements(d: Deployment) -> list[tuple[Host, Service]]:
    """The services on the hosts this phase acts on."""
    return [(h, s) for h, s in services.placements(d.env) if h in d.hosts]


def _services(d: Deployment, act: Callable) -> list[str]:
    if not d.hosts:
        return ["no host to act on: the deploy changed none"]
    d.touch(d.hosts)
    return connection.each(_placements(d), lambda placed: f"{placed[0].name}: {act(d.env, *placed)}")


def stop_services(d: Deployment) -> list[str]:
    return _services(d, lambda env, h, s: services.control(env, h, s, "stop"))


def start_services(d: Deployment) -> list[str]:
    return _services(d, lambda env, h, s: services.control(env, h, s, "start"))


def reload_services(d: Deployment) -> list[str]:
    """The rolling strategy's switch of the running app: new workers on `current`, then the old ones go."""
    return _services(d, services.reload)


def _switch(d: Deployment, target: str | None) -> list[str]:
    """Point `current` at `target` on the phase's hosts (None: no release, as before the first deploy)."""
    if not d.hosts:
        return ["no host to switch back: the deploy switched none"]
    d.touch(d.hosts)
    connection.each(d.hosts, lambda host: releases.switch(d.env, host, target))
    shown = f"releases/{target}" if target else "(none: no release was live before)"
    return [f"current -> {shown} on {', '.join(h.name for h in d.hosts)}"]


def switch_release(d: Deployment) -> list[str]:
    return _switch(d, d.release)


def drain_hosts(d: Deployment) -> list[str]:
    """Take the batch's hosts out of the load balancer before anything on them changes."""
    return [rollout.balancer(d.env, host, "drain") for host in d.hosts]


def restore_hosts(d: Deployment) -> list[str]:
    """Put the hosts back into the load balancer; a host that failed its health check stays out."""
    kept_out = [h.name for h in d.hosts if h.name in d.failed_hosts]
    back = [rollout.balancer(d.env, h, "restore") for h in d.hosts if h.name not in d.failed_hosts]
    return back + [f"{name} stays out of the load balancer: it failed its health check" for name in kept_out]


def check_hosts(d: Deployment) -> list[str]:
    """Each host of the batch answers healthy with the expected version; too many failures (more than
    `max_fail_percentage` of the batch) stop the rollout."""
    version = d.run.version if d.run.kind == "deploy" and not d.rolling_back else releases.version_of(d.target)
    outcome = rollout.check_batch(d.env, d.hosts, version)
    limit = d.env.rollout.max_fail_percentage
    if rollout.exceeded(len(outcome.failed), len(d.hosts), limit):
        raise ActionFailed(f"{len(outcome.failed)} of {len(d.hosts)} hosts failed (more than {limit:g}% allowed): "
                           + "; ".join(outcome.failed.values()))
    d.failed_hosts.update(outcome.failed)
    within = [f"{error} (within max_fail_percentage {limit:g}%)" for error in outcome.failed.values()]
    return outcome.healthy + within


def configure_release(d: Deployment) -> list[str]:
    """Step 7's configuration update; the record keeps each file's change against the previous releases."""
    env = d.env
    changes = {f.path: configfiles.diff(env, f, configfiles.deployed(env, f, d.previous) if d.previous else None)
               for f in env.app.config}
    d.run.facts["configuration_changes"] = changes
    written = [line for lines in connection.each(env.hosts_with("app"), lambda h: releases.configure(env, h, d.release))
               for line in lines]
    return written + [f"{path} (secrets redacted):\n{change}" for path, change in changes.items()]


def _in_release(d: Deployment, folder: str, template: list[str], version: str = "") -> str:
    argv = migrations.command(template, d.env.python, version)
    return connection.must(state.primary(d.env), 'cd -- "$1" && shift && exec "$@" 2>&1', folder, *argv,
                      what=" ".join(argv))


def migrate(d: Deployment) -> list[str]:
    """Run the release's pending migrations (Step 8) and verify they are applied; nothing else, since
    under `maintenance` the app does not answer meanwhile."""
    env, folder = d.env, releases.folder(d.env, d.release)
    before = queries.applied_versions(env)
    contents = package.read(d.package)
    expected = {m.version for m in migrations.in_package(contents.files, env.app.migrations.dir)}
    if expected <= before:
        notes = [f"no pending migration: the database has all {len(expected)} of the package"]
    else:
        notes = [_in_release(d, folder, env.app.migrations.up)]
    applied = queries.applied_versions(env)
    missing = sorted(expected - applied)
    if missing:
        raise ActionFailed(f"migrations not applied after migrating: {', '.join(missing)}")
    d.run.facts["migrations"] = {"applied": sorted(applied - before, key=int), "schema_before": d.previous_schema,
                                 "schema_after": queries.schema_version(env)}
    return notes


def after_migrate(d: Deployment) -> list[str]:
    """The migration state as the app and the database report it, then the after-migration commands
    (Step 8's index update): work that need not keep the app from answering."""
    env, folder = d.env, releases.folder(d.env, d.release)
    notes = [_in_release(d, folder, env.app.migrations.status),
             f"{env.app.migrations.status_query}: {', '.join(queries.query_column(env, env.app.migrations.status_query))}"]
    return notes + [_in_release(d, folder, command) for command in env.app.migrations.after]


def finish_deploy(d: Deployment) -> list[str]:
    """Record the release as live, prune old releases, release the lock."""
    env = d.env
    found = state.load(env)
    found.history.append(state.Live(d.release, d.run.version, queries.schema_version(env), d.run.id, timestamp(utc_now())))
    found.in_progress, found.last_run = None, _last_run(d, "deployed")
    state.save(env, found)
    keep = {d.release, d.previous} - {None}
    removed = [f"{h.name}: removed {r}" for h in env.hosts_with("app") for r in releases.prune(env, h, keep)]
    lock.release(env, d.run.id)
    d.locked = False
    return [f"{d.release} is live", *removed, "lock released"]


def plan_rollback(d: Deployment) -> list[str]:
    """Choose the release to return to (Step 14): the deploy's recorded previous one, or the one asked for."""
    env = d.env
    if d.run.kind == "deploy" or d.reason:
        return [f"returning to {d.target or 'no release (first deploy)'}, schema {d.target_schema or 'none'}: {d.reason}"]
    found = state.load(env)
    live = releases.current(env, state.primary(env))
    d.release = live
    if d.requested_target:
        entry = found.entry(d.requested_target)
        if entry is None or d.requested_target not in releases.listing(env, state.primary(env)):
            raise RunbookError(f"release {d.requested_target!r} is not a release that was live on {env.name}; "
                               f"known: {', '.join(e.release for e in found.history) or 'none'}")
    else:
        earlier = [e for e in found.history if e.release != live]
        if not earlier:
            raise RunbookError(f"{env.name} has no previous release to roll back to (live: {live or 'none'})")
        entry = earlier[-1]
    d.target, d.target_schema = entry.release, entry.schema
    d.reason = f"manual rollback by {d.run.operator} from {live} to {entry.release}"
    return [d.reason]


def revert_database(d: Deployment) -> list[str]:
    """Step 15: down migrations back to the recorded schema, or the backup restored when asked."""
    env = d.env
    if d.restore_db:
        if not d.backup or not d.backup.get("tables"):
            raise ActionFailed("no verified backup of this run to restore")
        backup.restore(env, d.backup)
        d.run.facts["database_restored"] = {
            "backup": d.backup["path"],
            "note": "the database was restored from the pre-deploy backup: every write made since it was taken was discarded",
        }
        return [f"restored {d.backup['path']}; writes made after it was taken are discarded"]
    now = queries.schema_version(env)
    if now == d.target_schema:
        return [f"schema already at {now or 'none'}: nothing to revert"]
    newest = d.release if d.release and d.release in releases.listing(env, state.primary(env)) else None
    if newest is None:
        raise ActionFailed(f"schema is at {now} but no release folder holds its down migrations")
    out = _in_release(d, releases.folder(env, newest), env.app.migrations.down, d.target_schema or "0")
    after = queries.schema_version(env)
    if after != d.target_schema:
        raise ActionFailed(f"schema is at {after or 'none'} after the down migrations, expected {d.target_schema or 'none'}")
    return [out, f"schema reverted from {now} to {after or 'none'} with the release's down migrations"]


def switch_back(d: Deployment) -> list[str]:
    return _switch(d, d.target)


def finish_rollback(d: Deployment) -> list[str]:
    env = d.env
    found = state.load(env)
    while found.history and found.history[-1].release != d.target:
        found.history.pop()
    found.in_progress, found.last_run = None, _last_run(d, "rolled back")
    state.save(env, found)
    d.run.facts["rollback"] = {"reason": d.reason, "from": d.release, "to": d.target, "schema": d.target_schema,
                               "database_restored": d.restore_db}
    lock.release(env, d.run.id)
    d.locked = False
    return [f"{d.target or 'no release'} is live again", "lock released"]


def has_target(d: Deployment) -> bool:
    return d.target is not None


def first_batch(d: Deployment) -> bool:
    return d.batch is None or d.batch == rollout.plan(d.env)[0]


# --- the sequences ---------------------------------------------------------------------------------

LOCK = Phase("lock", "Take the environment's deploy lock", take_lock)
PREFLIGHT = Phase("preflight", "Pre-flight checklist (Steps 1 to 5)", feature="preflight")
BACKUP = Phase("backup", "Back up the current database and verify the backup (Step 3)", take_backup)
BASELINE = Phase("baseline", "Measure the baseline of the release serving now (Step 20)", measure_baseline)
BAKE = Phase("bake", "Watch the release against its baseline (Steps 13, 14 and 20)", bake_release, on_failure=REPORT)
MIGRATE = Phase("migrate", "Execute and verify database migrations (Step 8)", migrate, on_failure=ROLL_BACK)
INDEXES = Phase("indexes", "Migration status and index update (Step 8)", after_migrate, on_failure=ROLL_BACK)
HEALTH = Phase("health", "Health checks (Step 10)", feature="health", on_failure=ROLL_BACK)
DRAIN = Phase("drain", "Take the hosts out of the load balancer", drain_hosts, on_failure=ROLL_BACK, per_batch=True)
RESTORE = Phase("restore", "Return the healthy hosts to the load balancer", restore_hosts, on_failure=ROLL_BACK,
                per_batch=True)
STOP = Phase("stop", "Stop current services (Step 7)", stop_services, on_failure=ROLL_BACK, per_batch=True)
START = Phase("start", "Start application services (Step 9)", start_services, on_failure=ROLL_BACK, per_batch=True)
RELOAD = Phase("reload", "Reload the app gracefully on the new release", reload_services, on_failure=ROLL_BACK,
               per_batch=True)
HOSTS = Phase("hosts", "Each host answers healthy on the new release (Step 10)", check_hosts, on_failure=ROLL_BACK,
              per_batch=True)


def deploy_sequence(env) -> list[Phase]:
    """The deploy's phases for the environment's rollout strategy, in runbook order.

    `maintenance` (the runbook's): each batch stops, switches, migrates (the first batch), starts.
    `rolling`: the backward-compatible migrations run first, with the old release serving; then each
    batch switches and reloads gracefully, so some workers answer at every moment.
    """
    rolling = env.rollout.strategy == "rolling"
    drain, restore = env.rollout.drain is not None, env.rollout.restore is not None
    each_host = env.rollout.host_url is not None or len(rollout.plan(env)) > 1
    per_batch = [
        *([DRAIN] if drain else []),
        *([] if rolling else [STOP]),
        Phase("switch", "Switch the current release atomically (Step 7)", switch_release, on_failure=ROLL_BACK,
              per_batch=True),
        RELOAD if rolling else replace(MIGRATE, per_batch=True, applies=first_batch, skip="migrated with the first batch"),
        *([] if rolling else [START]),
        *([HOSTS] if each_host else []),
        *([RESTORE] if restore else []),
    ]
    return [
        PREFLIGHT,
        LOCK,
        Phase("announce", "Pre-deployment notification (Step 6)", announce),
        replace(BASELINE, applies=lambda d: d.previous is not None),
        BACKUP,
        Phase("prepare", "Unpack the new version beside the current one (Step 7)", prepare_release),
        Phase("configure", "Update configuration of the new release (Step 7)", configure_release),
        *([MIGRATE, INDEXES] if rolling else []),
        *per_batch,
        *([] if rolling else [INDEXES]),
        Phase("verify-deploy", "Verify the release in place and its services (Steps 7 to 9)", feature="deploy",
              on_failure=ROLL_BACK),
        HEALTH,
        Phase("verification", "Post-deployment verification (Steps 11 and 12)", feature="verification",
              on_failure=ROLL_BACK),
        *([Phase("performance", "Performance verification (Steps 11 and 20)", feature="performance",
                 on_failure=ROLL_BACK)] if env.performance else []),
        replace(BAKE, on_failure=ROLL_BACK),
        Phase("finish", "Record the release, keep the last releases, release the lock", finish_deploy, on_failure=REPORT),
    ]


def rollback_sequence(env) -> list[Phase]:
    """Back to the previous release on the hosts the deploy changed (every app host for `invoke rollback`).

    `rolling` switches back and reloads before the down migrations: the previous release works with
    the newer schema, as the strategy requires of every migration.
    """
    rolling = env.rollout.strategy == "rolling"
    database_ = Phase("database", "Database rollback (Step 15)", revert_database, on_failure=ROLL_BACK)
    back = [
        Phase("switch-back", "Restore the previous version (Step 15)", switch_back, on_failure=ROLL_BACK),
        replace(RELOAD if rolling else START, title="Start the previous version's services (Step 16)",
                per_batch=False, applies=has_target, skip="no release to start: none was live before"),
        *([replace(HOSTS, title="Each host answers healthy on the previous version (Step 16)", per_batch=False,
                   applies=has_target, skip="no release to check: none was live before")]
          if env.rollout.host_url else []),
    ]
    return [
        LOCK,
        Phase("plan", "Choose the release to return to (Step 14)", plan_rollback),
        *([] if rolling else [replace(STOP, per_batch=False)]),
        *([*back, database_] if rolling else [database_, *back]),
        *([replace(RESTORE, per_batch=False)] if env.rollout.restore else []),
        Phase("verify-rollback", "Rollback verification (Step 16)", feature="rollback", on_failure=ROLL_BACK),
        replace(HEALTH, title="Health checks of the restored version (Step 10)", applies=has_target,
                skip="no release to check: none was live before"),
        Phase("finish", "Record the rollback, release the lock", finish_rollback, on_failure=ROLL_BACK),
    ]


GATE = [PREFLIGHT]
WATCH = [BASELINE, BAKE]
"""`invoke watch`: the release serving now, measured then watched; a trigger is reported, not acted on."""


# --- the engine --------------------------------------------------------------------------------------


def _progress(d: Deployment, phase: str) -> None:
    """Keep the environment's in-progress record current, so a crash can be diagnosed by the next run."""
    env, run = d.env, d.run
    if not d.locked:
        return
    found = state.load(env)
    found.in_progress = state.InProgress(
        run.id, run.kind, run.version, d.release, d.target if run.kind == "rollback" else d.previous,
        d.target_schema if run.kind == "rollback" else d.previous_schema,
        d.backup, phase, run.operator, run.runner, run.pid, timestamp(run.started),
    )
    state.save(env, found)


def _last_run(d: Deployment, outcome: str) -> dict:
    return {"run_id": d.run.id, "kind": d.run.kind, "version": d.run.version, "outcome": outcome,
            "operator": d.run.operator, "finished": timestamp(utc_now())}


def run_phase(d: Deployment, sequence: str, phase: Phase) -> PhaseResult:
    run = d.run
    run.event("phase started", sequence=sequence, phase=phase.name)
    if phase is not LOCK:
        _progress(d, phase.name)
    started = utc_now()
    if not phase.applies(d):
        result = PhaseResult(phase.name, phase.title, sequence, started, utc_now(), "skipped",
                             evidence=[phase.skip])
    elif phase.feature:
        version = d.run.version if sequence != "rollback" else (releases.version_of(d.target) if d.target else None)
        result = verify(run, phase.name, phase.title, sequence, phase.feature, version, d.context())
    else:
        result = PhaseResult(phase.name, phase.title, sequence, started, started, "passed")
        try:
            result.evidence = [redact(line) for line in phase.action(d)]
        except (ActionFailed, CheckFailed) as e:
            result.outcome, result.error = "failed", redact(str(e))
        except RunbookError:
            raise
        except Exception as e:  # an unexpected fault is still a failed phase, with its evidence kept
            result.outcome, result.error = "failed", redact(f"{type(e).__name__}: {e}")
            result.evidence.append(redact(traceback.format_exc()))
        result.finished = utc_now()
    if not (run.folder / result.report).exists():
        report.phase_report(run, result)
    run.phases.append(result)
    run.event("phase finished", sequence=sequence, phase=phase.name, outcome=result.outcome, error=result.error)
    print(summary(result), flush=True)
    return result


Failure = tuple[Phase, PhaseResult]
"""A phase that did not pass, and its result."""


def walk(d: Deployment, sequence: str, phases: list[Phase]) -> Failure | None:
    """Run the phases in order; consecutive per-batch phases run once for each batch of the rollout.
    The first phase that did not pass, or None."""
    index = 0
    while index < len(phases):
        group = [phases[index]]
        while group[-1].per_batch and index + len(group) < len(phases) and phases[index + len(group)].per_batch:
            group.append(phases[index + len(group)])
        index += len(group)
        failed = _walk_batches(d, sequence, group) if group[0].per_batch else _walk_phase(d, sequence, group[0])
        if failed:
            return failed
    return None


def _walk_phase(d: Deployment, sequence: str, phase: Phase) -> Failure | None:
    result = run_phase(d, sequence, phase)
    return None if result.outcome in ("passed", "skipped") else (phase, result)


def _walk_batches(d: Deployment, sequence: str, group: list[Phase]) -> Failure | None:
    """The group of phases for each batch in turn; with several batches each phase's name and title say
    which batch it is (`stop-2`, "... (batch 2 of 3: web2, web3)")."""
    batches = rollout.plan(d.env)
    try:
        for number, batch in enumerate(batches, 1):
            d.batch = batch
            for phase in group:
                if len(batches) > 1:
                    phase = replace(phase, name=f"{phase.name}-{number}", title=f"{phase.title} (batch {number} of "
                                    f"{len(batches)}: {', '.join(h.name for h in batch)})")
                failed = _walk_phase(d, sequence, phase)
                if failed:
                    return failed
    finally:
        d.batch = None
    return None


def _abandon(d: Deployment) -> None:
    """After a failure before anything changed: remove the half-made release, release the lock."""
    env = d.env
    if not d.locked:
        return
    if d.prepared:
        for host in env.hosts_with("app"):
            connection.must(host, 'rm -rf -- "$1" "$2"', releases.folder(env, d.release),
                       str(env.app.shared / "config" / d.release), what=f"removing {d.release}")
    found = state.load(env)
    found.in_progress, found.last_run = None, _last_run(d, "failed, nothing changed")
    state.save(env, found)
    lock.release(env, d.run.id)
    d.locked = False


def _after_failure(d: Deployment, sequence: str, failure: Failure) -> int:
    """What a failed phase leads to: the phase itself says (see `Phase.on_failure`)."""
    phase, failed = failure
    rule = phase.on_failure
    if rule == ABANDON:
        _abandon(d)
        return errors.FAILED
    if rule == REPORT:
        d.run.facts["unfinished"] = f"{d.release} is live and verified, but '{failed.title}' failed: {failed.cause}"
        return errors.FAILED
    if sequence == "deploy":
        d.reason = f"{failed.title} failed: {failed.cause}"
        d.run.event("rollback started", reason=d.reason)
        print(redact(f"rolling back: {d.reason}"), flush=True)
        d.rolling_back, d.failed_hosts, d.batch = True, {}, list(d.touched)
        failure = walk(d, "rollback", rollback_sequence(d.env))
        if failure is None:
            return errors.FAILED
        failed = failure[1]
    d.run.facts["needs_human"] = (f"the rollback failed during '{failed.title}': {failed.cause}. State now: "
                                  f"{where(d.env)}. The lock is kept; after fixing the cause run: "
                                  f"invoke rollback --env {d.env.name} --break-lock")
    return errors.NEEDS_HUMAN


def _outcome_event(run: Run, code: int) -> str:
    """What the notification targets hear at the end: exit 1 always leaves a healthy release serving."""
    if code == errors.OK:
        return "rolled_back" if run.kind == "rollback" else "succeeded"
    if code == errors.FAILED:
        return "rolled_back" if "rollback" in run.facts else "aborted"
    return "failed"


def _conclude(d: Deployment, code: int) -> int:
    """Write the record (and the incident record after a failure), sign the run folder, update the history."""
    run = d.run
    if run.kind in ("deploy", "rollback") and "refused" not in run.facts and run.phases:
        _notify(d, _outcome_event(run, code), d.reason or "")
    run.event("run finished", exit_code=code)
    key = signing.private_key(run.env)
    if key is not None:
        run.facts["signing"] = signing.identity(key)
    if incident.needed(code, run.facts):
        run.facts["incident"] = incident.FILES
    data = report.write(run, code, utc_now())
    if "incident" in data:
        incident.write(run.folder, data, run.journal.events())
    if key is not None:
        signing.sign(run.folder, key)
    history.write(run.folder.parent)
    if "needs_human" in d.run.facts:
        print(redact(f"A HUMAN IS NEEDED: {d.run.facts['needs_human']}"))
    print(f"record: {d.run.folder / 'index.html'}")
    return code


def _refused(d: Deployment, error: RunbookError) -> int:
    """A refusal (lock held, crashed run, nothing to roll back to): release what this run took, exit 2."""
    d.run.facts["refused"] = redact(str(error))
    if d.locked:
        lock.release(d.env, d.run.id)
        d.locked = False
    print(redact(f"runbook: {error}"))
    return _conclude(d, error.exit_code)


def deploy(env_arg: str, version: str, restore_db: bool = False, change: str | None = None,
           approved_by: str | None = None, emergency: bool = False, reason: str | None = None) -> int:
    """`invoke deploy`: from one healthy release to the next, or back to where it was."""
    run = start(env_arg, version, "deploy")
    d = Deployment(run, restore_db=restore_db)
    d.package = run.env.app.package_dir / package.file_name(run.env.app.name, version)
    try:
        run.facts["approval"] = approval.check(run.env, run.operator, run.started, change, approved_by,
                                               emergency, reason).as_record()
        if not d.package.exists():
            raise RunbookError(f"package {d.package} does not exist (build it with `invoke package --version {version}`)")
        failed = walk(d, "deploy", deploy_sequence(run.env))
    except RunbookError as e:
        return _refused(d, e)
    if failed is not None:
        return _conclude(d, _after_failure(d, "deploy", failed))
    if d.failed_hosts:
        d.run.facts["unfinished"] = (f"{d.release} is live, but these hosts failed their health check (within "
                                     f"max_fail_percentage) and stay out of the load balancer: "
                                     + "; ".join(d.failed_hosts.values()))
        return _conclude(d, errors.FAILED)
    return _conclude(d, errors.OK)


def rollback(env_arg: str, to: str | None = None, restore_db: bool = False, break_lock: bool = False) -> int:
    """`invoke rollback`: back to the previous live release (or `to`), with the same sequence as a deploy's."""
    run = start(env_arg, None, "rollback")
    d = Deployment(run, restore_db=restore_db, break_lock=break_lock, requested_target=to)
    try:
        broken = walk(d, "rollback", rollback_sequence(run.env))
    except RunbookError as e:
        return _refused(d, e)
    return _conclude(d, errors.OK if broken is None else _after_failure(d, "rollback", broken))


def gate(env_arg: str, version: str | None) -> int:
    """`invoke preflight`: the release gate alone; 0 when every blocking check passed."""
    d = Deployment(start(env_arg, version, "preflight"))
    failed = walk(d, "gate", GATE)
    return _conclude(d, errors.OK if failed is None else errors.FAILED)


def watch_alone(env_arg: str) -> int:
    """`invoke watch`: the bake window against what is deployed now; exit 1 when a trigger fired."""
    d = Deployment(start(env_arg, None, "watch"))
    failed = walk(d, "watch", WATCH)
    return _conclude(d, errors.OK if failed is None else errors.FAILED)


def take_backup_alone(env_arg: str) -> int:
    """`invoke backup`: Step 3 on its own."""
    d = Deployment(start(env_arg, None, "backup"))
    failed = walk(d, "backup", [BACKUP])
    return _conclude(d, errors.OK if failed is None else errors.FAILED)

"""Step 7: the release unpacked beside the current one, configured, switched; the rollout's batches
drained, checked and restored; Step 14's choice of the release to return to."""

from dataclasses import replace

from runbook.config import Environment, Host
from runbook.database import queries, rows
from runbook.engine import planner, state, undo
from runbook.engine.deployment import Deployment
from runbook.errors import ActionFailed, RunbookError
from runbook.findings import require
from runbook.hosts import connection
from runbook.release import configfiles, package, releases, rollout
from runbook.times import stamp, utc_now


def prepare_release(d: Deployment) -> list[str]:
    """Copy the verified package to every app host (`shared/packages/`, rsync over ssh) and unpack it into
    a new release folder there, services untouched."""
    env, notes = d.env, []
    contents = package.read(d.package)
    findings = package.presence(contents) + package.integrity(contents) + package.unlisted_files(contents)
    require(findings + [package.version_matches(contents, d.run.version)])
    sha256 = package.checksum(d.package)
    notes.append(f"package {d.package} sha256 {sha256} verified against its manifest")
    d.run.facts["package"] = {"path": str(d.package), "sha256": sha256}
    d.prepared = True
    packages = env.app.shared / "packages"
    on_host = str(packages / d.package.name)

    def one(host: Host) -> list[str]:
        done = [f"removed unfinished release {gone} on {host.name}, left by a crashed run"
                for gone in releases.clean_unfinished(env, host)]
        connection.copy(host, d.package, on_host)
        releases.remove_old_packages(env, host, str(packages), d.package.name)
        done.append(f"package copied to {host.name}:{on_host}")
        releases.unpack(env, host, on_host, d.release)
        before = releases.files_state(env, host, d.release)  # before: a change during the check shows later
        done.append(releases.verify_files(env, host, d.release))
        d.files_states[host.name] = before
        releases.finish(env, host, d.release)
        return done

    return notes + [line for done in connection.each(env.hosts_with("app"), one) for line in done]


def remove_prepared(d: Deployment) -> None:
    """Remove the release folder and configuration this run created, from every app host."""
    env = d.env
    for host in env.hosts_with("app"):
        releases.remove(env, host, d.release)


def configure_release(d: Deployment) -> list[str]:
    """Step 7's configuration update; the record keeps each file's change against the previous release."""
    env = d.env
    changes = {f.path: configfiles.diff(env, f, configfiles.deployed(env, f, d.previous) if d.previous else None)
               for f in env.app.config}
    d.run.facts["configuration_changes"] = changes
    written = [line for lines in connection.each(env.hosts_with("app"), lambda h: releases.configure(env, h, d.release))
               for line in lines]
    return written + [f"{path} (secrets redacted):\n{change}" for path, change in changes.items()]


def _switch(d: Deployment, target: str | None) -> list[str]:
    """Point `current` at `target` on the phase's hosts (None: no release, as before the first deploy)."""
    if not d.hosts:
        return ["no host to switch back: the deploy switched none"]
    d.touch(d.hosts)
    connection.each(d.hosts, lambda host: releases.switch(d.env, host, target))
    shown = f"releases/{target}" if target else "(none: no release was live before)"
    return [f"current -> {shown} on {', '.join(h.name for h in d.hosts)}"]


def switch_release(d: Deployment) -> list[str]:
    """Switch the batch; at the first switch the WAL position is recorded: with the backup's, the span a
    point-in-time recovery may choose from."""
    notes = _switch(d, d.release)
    if "switch" not in d.run.facts:
        d.run.facts["switch"] = {"at": stamp(utc_now()), "lsn": queries.wal_position_or_why(d.env)}
        notes.append(f"WAL position at the switch: {d.run.facts['switch']['lsn']}")
    return notes


def switch_back(d: Deployment) -> list[str]:
    return _switch(d, d.target)


def drain_hosts(d: Deployment) -> list[str]:
    """Take the batch's hosts out of the load balancer before anything on them changes."""
    return [rollout.balancer(d.env, host, "drain") for host in d.hosts]


def restore_hosts(d: Deployment) -> list[str]:
    """Put the hosts back into the load balancer; a host that failed its health check stays out."""
    kept_out = [h.name for h in d.hosts if h.name in d.failed_hosts]
    back = [rollout.balancer(d.env, h, "restore") for h in d.hosts if h.name not in d.failed_hosts]
    return back + [f"{name} stays out of the load balancer: it failed its health check" for name in kept_out]


def rotate_instances(d: Deployment) -> list[str]:
    """The rolling strategy behind a load balancer's runtime API: on each host of the batch, its
    instances one at a time drained, restarted on `current`, checked on their own address, returned."""
    if not d.hosts:
        return ["no host to act on: the deploy changed none"]
    d.touch(d.hosts)
    return [note for host in d.hosts for note in rollout.rotate(d.env, host, d.verifying_version)]


def check_hosts(d: Deployment) -> list[str]:
    """Each host of the batch answers healthy with the expected version; too many failures (more than
    `max_fail_percentage` of the batch) stop the rollout."""
    outcome = rollout.check_batch(d.env, d.hosts, d.verifying_version)
    limit = d.env.rollout.max_fail_percentage
    if rollout.exceeded(len(outcome.failed), len(d.hosts), limit):
        states, evidence = rollout.service_states(d.env, [h for h in d.hosts if h.name in outcome.failed])
        raise ActionFailed(f"{len(outcome.failed)} of {len(d.hosts)} hosts failed (more than {limit:g}% allowed): "
                           + "; ".join([*outcome.failed.values(), *states]), evidence=evidence)
    d.failed_hosts.update(outcome.failed)
    within = [f"{error} (within max_fail_percentage {limit:g}%)" for error in outcome.failed.values()]
    return outcome.healthy + within


def plan_rollback(d: Deployment) -> list[str]:
    """Choose the release to return to (Step 14) and check it can be returned to before anything
    changes: the deploy's recorded previous one, the killed run's, or the one asked for; then choose and
    state what the rollback does to the data (`planner`)."""
    if d.nothing_to_do:
        return [d.nothing_to_do]
    if d.run.kind == "deploy":
        return [f"returning to {d.target or 'no release (first deploy)'}, schema {d.target_schema or 'none'}: {d.reason}",
                *_plan_database(d, d.release if d.prepared else None)]
    if d.recovering is None:
        _choose_target(d)
    checked = _check_target(d)
    if d.snapshot is None:  # kept with the intent: the rows check after the rollback compares with it
        d.snapshot = rows.snapshot(d.env, d.env.rollback.protected_tables)
    if d.recovering is not None:
        d.undo = undo.decide(undo.read_facts(d.env), d.target, d.target_schema)
        if not d.undo.anything:
            d.nothing_to_do = f"{d.reason}: {undo.describe(d.undo, d.target, d.target_schema)}: releasing the lock"
            return [d.nothing_to_do]
        d.migrating = d.recovering.intent.phase == "migrate"  # its migrate command may still be running
        database = _plan_database(d, d.release)
        if d.plan.path == planner.CODE:
            d.undo = replace(d.undo, revert_schema=False)
        return [d.reason, *checked, undo.describe(d.undo, d.target, d.target_schema), *database]
    return [d.reason, *checked, *_plan_database(d, d.release)]


def _plan_database(d: Deployment, live: str | None) -> list[str]:
    """The database path of this rollback, put in the record before anything acts; a refused one stops it."""
    d.plan = planner.choose(d.env, live, d.target, d.target_schema, d.backup, d.restore_db, d.accept_loss,
                            settled=not d.migrating)
    d.run.facts["rollback_plan"] = d.plan.as_record()
    if d.plan.refused:
        raise RunbookError(d.plan.refused)
    d.target_schema, d.restore_db = d.plan.schema_after, d.plan.path == planner.RESTORE
    return d.plan.lines()


def _choose_target(d: Deployment) -> None:
    """A manual rollback: the release asked for, else the newest earlier live one."""
    live, entry, d.backup = planner.target(d.env, d.requested_target)
    d.release, d.target, d.target_schema = live, entry.release, entry.schema_version
    d.reason = f"manual rollback by {d.run.operator} from {live} to {entry.release}"


def _check_target(d: Deployment) -> list[str]:
    """Refuse (exit 2, nothing changed) a target that cannot serve: its folder missing or changed on an
    app host, no backup to restore when asked to; how its files were found unchanged."""
    env, checked = d.env, []
    if d.target is not None:
        entry = state.load(env).entry(d.target)
        for host in env.hosts_with("app"):
            if d.target not in releases.listing(env, host):
                raise RunbookError(f"release {d.target} is not on {host.name} (pruned or never unpacked there): "
                                   f"cannot roll back to it; choose another with --to")
            checked.append(_unchanged(env, host, d.target, entry))
    if d.restore_db and (not d.backup or not d.backup.get("tables")):
        raise RunbookError("--restore-db restores the backup a deploy took; none is recorded for this rollback")
    if d.recovering is not None and not d.restore_db and queries.schema_version(env) != d.target_schema and (
            not d.release or d.release not in releases.listing(env, state.primary(env))):
        raise RunbookError(f"the schema differs from {d.target_schema or 'none'} and no release folder holds the "
                           f"down migrations ({d.release or 'no release'} is not on {state.primary(env).name})")
    return checked


def _unchanged(env: Environment, host: Host, release: str, entry: state.Live | None) -> str:
    """The target's files on `host` are those prepare checked: the same `releases.files_state` as it
    recorded, else every file read again against the manifest (`verify_files`)."""
    try:
        recorded = entry.files.get(host.name) if entry else None
        if recorded is not None and recorded == releases.files_state(env, host, release):
            return (f"every file of {release} on {host.name} unchanged (inode, size and change time) since it "
                    f"matched {package.MANIFEST} as run {entry.run_id} prepared it")
        return releases.verify_files(env, host, release)
    except ActionFailed as e:
        raise RunbookError(f"cannot roll back to {release}: {e}") from None

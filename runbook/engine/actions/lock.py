"""The lock and the environment's state: taken first, kept current by every phase, released last."""

from runbook.database import queries
from runbook.engine import lock, state
from runbook.engine.deployment import Deployment
from runbook.times import stamp, utc_now
from runbook.errors import RunbookError
from runbook.release import releases


def take_lock(d: Deployment) -> list[str]:
    """Take the environment's lock; a crashed run found on the environment is reported, never ignored."""
    env, run = d.env, d.run
    if d.locked:
        return [f"this run already holds the lock of {env.name}"]
    me = lock.Holder(run_id=run.id, operator=run.operator, runner=run.runner, pid=run.pid,
                     since=stamp(run.started))
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
    progress(d, "lock")
    return notes


def where(env) -> str:
    """The environment's state in one sentence, for people deciding what to do next."""
    host = state.primary(env)
    return (f"current release on {host.name}: {releases.current(env, host) or 'none'}, "
            f"database schema: {queries.schema_version(env) or 'none'}")


def progress(d: Deployment, phase: str) -> None:
    """Keep the environment's in-progress record current, so a crash can be diagnosed by the next run."""
    env, run = d.env, d.run
    if not d.locked:
        return
    found = state.load(env)
    rollback = run.kind == "rollback"
    found.in_progress = state.InProgress(
        run_id=run.id, kind=run.kind, version=run.version, release=d.release,
        previous_release=d.target if rollback else d.previous,
        previous_schema=d.target_schema if rollback else d.previous_schema,
        backup=d.backup, phase=phase, operator=run.operator, runner=run.runner, pid=run.pid,
        started=stamp(run.started),
    )
    state.save(env, found)


def last_run(d: Deployment, outcome: str) -> state.LastRun:
    return state.LastRun(run_id=d.run.id, kind=d.run.kind, version=d.run.version, outcome=outcome,
                         operator=d.run.operator, finished=stamp(utc_now()))


def unlock(d: Deployment) -> None:
    lock.release(d.env, d.run.id)
    d.locked = False


def finish_deploy(d: Deployment) -> list[str]:
    """Record the release as live, prune old releases, release the lock."""
    env = d.env
    found = state.load(env)
    found.history.append(state.Live(release=d.release, version=d.run.version, schema_version=queries.schema_version(env),
                                    run_id=d.run.id, at=stamp(utc_now())))
    found.in_progress, found.last_run = None, last_run(d, "deployed")
    state.save(env, found)
    keep = {d.release, d.previous} - {None}
    removed = [f"{h.name}: removed {r}" for h in env.hosts_with("app") for r in releases.prune(env, h, keep)]
    unlock(d)
    return [f"{d.release} is live", *removed, "lock released"]


def finish_rollback(d: Deployment) -> list[str]:
    """Record the release returned to as live, release the lock."""
    env = d.env
    found = state.load(env)
    while found.history and found.history[-1].release != d.target:
        found.history.pop()
    found.in_progress, found.last_run = None, last_run(d, "rolled back")
    state.save(env, found)
    d.run.facts["rollback"] = {"reason": d.reason, "from": d.release, "to": d.target, "schema": d.target_schema,
                               "database_restored": d.restore_db}
    unlock(d)
    return [f"{d.target or 'no release'} is live again", "lock released"]

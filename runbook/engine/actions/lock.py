"""The lock with the run's intent: taken first, rewritten before every phase acts, released last;
and what the environment remembers once a run is done."""

from runbook.database import queries, rows
from runbook.engine import lock, state
from runbook.engine.deployment import Deployment
from runbook.times import stamp, utc_now
from runbook.release import releases, services


def take_lock(d: Deployment) -> list[str]:
    """Take the environment's lock with this run's intent; with `--break-lock`, take over a killed
    run's lock and carry its intent, so this run finishes or undoes exactly what that run changed."""
    env, run = d.env, d.run
    if d.locked:
        return [f"this run already holds the lock of {env.name}"]
    if run.kind == "deploy":
        d.previous = releases.current(env, state.primary(env))
        d.previous_schema = queries.schema_version(env)
        d.release = releases.name(run.version, run.started)
        d.target, d.target_schema = d.previous, d.previous_schema
    me = _holder(d)
    crashed = lock.read(env) if d.break_lock else None
    if crashed is None:
        lock.acquire(env, lock.Lock(holder=me, intent=d.intent("lock", run.kind)))
        d.locked = True
        notes = [f"lock of {env.name} taken by {me}"]
        if d.break_lock:
            d.nothing_to_do = f"no run holds the lock of {env.name}: nothing to recover"
            notes.append(d.nothing_to_do)
        elif run.kind == "deploy":
            notes.append(f"live release before this deploy: {d.previous or 'none'}, "
                         f"schema {d.previous_schema or 'none'}")
        return notes
    return _take_over(d, me, crashed)


def _take_over(d: Deployment, me: lock.Holder, crashed: lock.Lock) -> list[str]:
    env, run, intent = d.env, d.run, crashed.intent
    lock.take_over(env, lock.Lock(holder=me, intent=intent.model_copy(update={"phase": "lock"})), crashed)
    d.locked, d.recovering = True, crashed
    d.release, d.target, d.target_schema = intent.release, intent.return_to, intent.return_schema
    d.backup, d.snapshot = intent.backup, intent.snapshot
    what = f"{intent.kind} of {intent.version}" if intent.version else intent.kind
    description = (f"run {crashed.holder.run_id} ({what}) by {crashed.holder.operator} stopped during "
                   f"phase '{intent.phase}' of its {intent.sequence} without finishing")
    run.facts["crashed_run"] = {"run_id": crashed.holder.run_id, "phase": intent.phase, "description": description}
    d.reason = f"recovering from {description}"
    last = state.load(env).last_run
    if last is not None and last.run_id == crashed.holder.run_id:
        d.nothing_to_do = f"{description}, after it had recorded how it ended ({last.outcome}): only its lock was left"
    elif intent.kind == "rollback" and intent.release is None and intent.return_to is None:
        d.nothing_to_do = f"{description}, before it had chosen a release: it changed nothing"
    return [f"lock of {env.name} taken over by {me}", description, *([d.nothing_to_do] if d.nothing_to_do else [])]


def progress(d: Deployment, phase: str, sequence: str) -> None:
    """Rewrite the lock with this run's intent before `phase` acts, so a kill leaves the truth behind."""
    if d.locked:
        lock.update(d.env, lock.Lock(holder=_holder(d), intent=d.intent(phase, sequence)))


def _holder(d: Deployment) -> lock.Holder:
    run = d.run
    return lock.Holder(run_id=run.id, operator=run.operator, runner=run.runner, pid=run.pid, since=stamp(run.started))


def last_run(d: Deployment, outcome: str) -> state.LastRun:
    return state.LastRun(run_id=d.run.id, kind=d.run.kind, version=d.run.version, outcome=outcome,
                         operator=d.run.operator, finished=stamp(utc_now()))


def unlock(d: Deployment) -> None:
    lock.release(d.env, d.run.id)
    d.locked = False


def where(env) -> str:
    """The environment's state, for people deciding what to do next: per app host the release `current`
    points at and whether each service runs, and the database's schema version."""
    lines = []
    for host in env.hosts_with("app"):
        try:
            running = [f"{s.name} {'running' if services.running(env, host, s).ok else 'stopped'}"
                       for h, s in services.placements(env) if h == host]
            lines.append(f"{host.name}: current {releases.current(env, host) or 'none'}, {', '.join(running) or 'no service'}")
        except Exception as e:  # a host that does not answer is part of the state, not a reason to stop
            lines.append(f"{host.name}: unknown ({type(e).__name__}: {e})")
    return "; ".join(lines + [f"database schema: {queries.schema_version_or_why(env) or 'none'}"])


def finish_deploy(d: Deployment) -> list[str]:
    """Record the release as live, prune old releases and forget them in the state file, release the lock."""
    env = d.env
    found = state.load(env)
    found.history.append(state.Live(release=d.release, version=d.run.version,
                                    schema_version=queries.schema_version(env), run_id=d.run.id,
                                    at=stamp(utc_now()), backup=d.backup, files=d.files_states))
    found.last_run = last_run(d, "deployed")
    state.save(env, found)
    keep, hosts = {d.release, d.previous} - {None}, env.hosts_with("app")
    pruned = [releases.prune(env, h, keep) for h in hosts]
    removed = [f"{h.name}: removed {r}" for h, (gone, _) in zip(hosts, pruned) for r in gone]
    if found.forget_all_but(keep | set.intersection(*(set(left) for _, left in pruned))):
        state.save(env, found)
    dropped = rows.drop(env, d.snapshot)
    unlock(d)
    return [f"{d.release} is live", *removed, *dropped, "lock released"]


def finish_rollback(d: Deployment) -> list[str]:
    """Record the release returned to as live, release the lock; with nothing done, only release it."""
    env = d.env
    if d.nothing_to_do:
        unlock(d)
        return [d.nothing_to_do, "lock released; nothing else changed"]
    found = state.load(env)
    while found.history and found.history[-1].release != d.target:
        found.history.pop()
    found.last_run = last_run(d, "rolled back")
    state.save(env, found)
    d.run.facts["rollback"] = {"reason": d.reason, "from": d.release, "to": d.target, "schema": d.target_schema,
                               "database_restored": d.restore_db}
    dropped = rows.drop(env, d.snapshot)
    unlock(d)
    return [f"{d.target or 'no release'} is live again", *dropped, "lock released"]

"""How a run ends: the exit-code contract in one place.

0 success; 1 a phase failed and the environment is on a known healthy release (nothing changed, or
rolled back); 2 refused, nothing changed; 3 the rollback failed too and a human is needed.
"""

from runbook import console, errors
from runbook.engine import lock, state
from runbook.engine.actions.announce import tell
from runbook.engine.actions.lock import last_run, unlock, where
from runbook.engine.actions.release import remove_prepared
from runbook.engine.deployment import Deployment
from runbook.engine.phase import ABANDON, REPORT
from runbook.engine.run import Run
from runbook.engine.sequences import rollback_sequence
from runbook.engine.walk import Failure, walk
from runbook.errors import RunbookError
from runbook.record import history, incident, report, signing
from runbook.secrets import redact, redact_files
from runbook.times import utc_now


def abandon(d: Deployment) -> None:
    """After a failure before anything changed: remove the half-made release, release the lock."""
    env = d.env
    if not d.locked:
        return
    if d.recovering is not None:
        keep_recovery_lock(d)
        return
    if d.prepared:
        remove_prepared(d)
    if d.run.kind == "deploy":
        found = state.load(env)
        found.last_run = last_run(d, "failed, nothing changed")
        state.save(env, found)
    unlock(d)


def keep_recovery_lock(d: Deployment) -> None:
    """A recovery that stops before acting keeps the killed run's lock with its intent: releasing it would
    leave what that run changed unknown to the next deploy; the next `--break-lock` takes it over again."""
    d.run.facts["lock_kept"] = (f"the lock of {d.env.name} is kept with the intent of the killed run "
                                f"{d.recovering.holder.run_id}: after fixing the cause run: invoke rollback --env "
                                f"{d.run.env_arg} --break-lock")
    d.locked = False
    console.current().say(redact(d.run.facts["lock_kept"]))


def after_failure(d: Deployment, sequence: str, failure: Failure) -> int:
    """What a failed phase leads to: the phase itself says (see `Phase.on_failure`)."""
    phase, failed = failure
    if phase.on_failure == ABANDON:
        abandon(d)
        if failed.refused:
            d.refused = failed.error
            return errors.REFUSED
        return errors.FAILED
    if phase.on_failure == REPORT:
        d.run.facts["unfinished"] = f"{d.release} is live and verified, but '{failed.title}' failed: {failed.cause}"
        return errors.FAILED
    if sequence == "deploy":
        d.reason = f"{failed.title} failed: {failed.cause}"
        d.run.event("rollback started", reason=d.reason)
        console.current().say(redact(f"rolling back: {d.reason}"))
        d.rolling_back, d.failed_hosts, d.batch = True, {}, list(d.touched)
        failure = walk(d, "rollback", rollback_sequence(d.env))
        if failure is None:
            return errors.FAILED
        failed = failure[1]
    d.needs_human = (f"the rollback failed during '{failed.title}': {failed.cause}. State now: "
                     f"{where(d.env)}. The lock is kept with the run's intent; after fixing the cause run: "
                     f"invoke rollback --env {d.run.env_arg} --break-lock")
    return errors.NEEDS_HUMAN


def _outcome_event(d: Deployment, code: int) -> str:
    """What the notification targets hear at the end: exit 1 always leaves a healthy release serving."""
    if code == errors.OK:
        return "rolled_back" if d.run.kind == "rollback" else "succeeded"
    if code == errors.FAILED:
        return "rolled_back" if d.rolling_back else "aborted"
    return "failed"


def conclude(d: Deployment, code: int) -> int:
    """Write the record (and the incident record after a failure), pass every file of the run folder
    through the redactor, sign the folder, update the history."""
    run: Run = d.run
    if run.kind in ("deploy", "rollback") and d.refused is None and not d.nothing_to_do and run.phases:
        tell(d, _outcome_event(d, code), d.reason or "")
    run.event("run finished", exit_code=code)
    for key, value in (("refused", d.refused), ("needs_human", d.needs_human)):
        if value is not None:
            run.facts[key] = value
    key = signing.private_key(run.env)
    if key is not None:
        run.facts["signing"] = signing.identity(key)
    if incident.needed(code, run.facts):
        run.facts["incident"] = incident.FILES
    data = report.write(run, code, utc_now())
    if "incident" in data:
        incident.write(run.folder, data, run.journal.events())
    redact_files(run.folder)
    if key is not None:
        signing.sign(run.folder, key)
    history.write(run.folder.parent)
    if d.needs_human:
        console.current().say(redact(f"A HUMAN IS NEEDED: {d.needs_human}"))
    console.current().say(f"record: {run.folder / 'index.html'}")
    return code


def refused(d: Deployment, error: RunbookError) -> int:
    """A refusal (lock held, crashed run, nothing to roll back to): release what this run took, exit 2."""
    d.refused = redact(str(error))
    if d.recovering is not None:
        keep_recovery_lock(d)
    elif d.locked:
        lock.release(d.env, d.run.id)
        d.locked = False
    console.current().say(redact(f"runbook: {error}"))
    return conclude(d, error.exit_code)

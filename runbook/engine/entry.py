"""The engine's entry points, one per task: deploy, rollback, the release gate, watch, backup."""

from runbook import errors
from runbook.engine import planner, sequences, signals
from runbook.engine.deployment import Deployment
from runbook.engine.phase import Phase
from runbook.engine.outcome import after_failure, conclude, refused
from runbook.engine.run import start
from runbook.engine.walk import walk
from runbook.environments import open_environment
from runbook.errors import RunbookError
from runbook.governance import approval
from runbook.release import package, releases


def deploy(env_arg: str, version: str, restore_db: bool = False, change: str | None = None,
           approved_by: str | None = None, emergency: bool = False, reason: str | None = None,
           accept_loss: bool = False) -> int:
    """`invoke deploy`: from one healthy release to the next, or back to where it was."""
    run = start(env_arg, version, "deploy")
    d = Deployment(run, restore_db=restore_db, accept_loss=accept_loss)
    d.package = run.env.app.package_dir / package.file_name(run.env.app.name, version)
    try:
        if restore_db and run.env.strict and not accept_loss:
            raise RunbookError(f"--restore-db on {run.env.name}, a strict environment: a rollback would discard every "
                               "write made since the backup; give --accept-loss to accept that loss")
        run.facts["approval"] = approval.check(run.env, run.operator, run.started, change, approved_by,
                                               emergency, reason).as_record()
        if not d.package.exists():
            raise RunbookError(f"package {d.package} does not exist (build it with `invoke package --version {version}`)")
    except RunbookError as e:
        return refused(d, e)
    with signals.as_failures():
        failed = walk(d, "deploy", sequences.deploy_sequence(run.env))
        if failed is not None:
            return conclude(d, after_failure(d, "deploy", failed))
    if d.failed_hosts:
        d.run.facts["unfinished"] = (f"{d.release} is live, but these hosts failed their health check (within "
                                     f"max_fail_percentage) and stay out of the load balancer: "
                                     + "; ".join(d.failed_hosts.values()))
        return conclude(d, errors.FAILED)
    return conclude(d, errors.OK)


def rollback(env_arg: str, to: str | None = None, restore_db: bool = False, break_lock: bool = False,
             accept_loss: bool = False) -> int:
    """`invoke rollback`: back to the previous live release (or `to`), with the same sequence as a deploy's."""
    if to is not None:
        releases.validate_name(to)
    run = start(env_arg, None, "rollback")
    d = Deployment(run, restore_db=restore_db, break_lock=break_lock, requested_target=to, accept_loss=accept_loss)
    with signals.as_failures():
        broken = walk(d, "rollback", sequences.rollback_sequence(run.env))
        return conclude(d, errors.OK if broken is None else after_failure(d, "rollback", broken))


def rollback_plan(env_arg: str, to: str | None = None, restore_db: bool = False, accept_loss: bool = False) -> list[str]:
    """`invoke rollback --plan`: what a rollback would do to the data and what it would cost; changes nothing."""
    if to is not None:
        releases.validate_name(to)
    return planner.preview(open_environment(env_arg, start_local=False), to, restore_db, accept_loss)


def _alone(d: Deployment, sequence: str, phases: list[Phase]) -> int:
    """A sequence of its own that changes nothing it must undo: exit 1 when a phase did not pass."""
    failed = walk(d, sequence, phases)
    return conclude(d, errors.OK if failed is None else errors.FAILED)


def gate(env_arg: str, version: str | None, change: str | None = None) -> int:
    """`invoke preflight`: the release gate alone; 0 when every blocking check passed. A strict
    environment refuses a gate without a version (exit 2): its package checks could not run. `change`:
    the change ticket the release is for (an attestation may cover it)."""
    d = Deployment(start(env_arg, version, "preflight"), change=change)
    if version is None and d.env.strict:
        return refused(d, RunbookError(f"name the version to gate: `invoke preflight --env {env_arg} --version V` "
                                       f"({d.env.name} is a strict environment)"))
    return _alone(d, "gate", sequences.GATE)


def watch(env_arg: str) -> int:
    """`invoke watch`: the bake window against what is deployed now; exit 1 when a trigger fired."""
    return _alone(Deployment(start(env_arg, None, "watch")), "watch", sequences.WATCH)


def backup(env_arg: str) -> int:
    """`invoke backup`: Step 3 on its own; SIGTERM or Ctrl-C fail it, so its restore drill's scratch database
    is dropped."""
    run = start(env_arg, None, "backup")
    with signals.as_failures():
        return _alone(Deployment(run), "backup", [sequences.BACKUP])

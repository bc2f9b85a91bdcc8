"""The runbook's deploy and rollback as data, in runbook order: the one place that states the order.

`deploy`, `rollback`, `status` and the record all read `deploy_sequence` and `rollback_sequence`
(which depend on the environment's rollout strategy).
"""

from dataclasses import replace

from runbook.config import Environment
from runbook.engine.actions import announce, database, lock, release, services, watch
from runbook.engine.deployment import Deployment
from runbook.engine.phase import REPORT, ROLL_BACK, Phase, has_target
from runbook.release import rollout


def first_batch(d: Deployment) -> bool:
    return d.batch is None or d.batch == rollout.plan(d.env)[0]


def changes_app(d: Deployment) -> bool:
    """The rollback changes the release or the schema (a recovery decides from the hosts' facts)."""
    return not d.nothing_to_do and (d.undo is None or d.undo.changes)


def reverts_schema(d: Deployment) -> bool:
    return not d.nothing_to_do and (d.undo is None or d.undo.revert_schema)


def starts_app(d: Deployment) -> bool:
    return has_target(d) and not d.nothing_to_do and (d.undo is None or d.undo.anything)


def verifies(d: Deployment) -> bool:
    """Verify unless there is nothing to verify against: no killed run, or one that had finished."""
    return not d.nothing_to_do or d.undo is not None


NOTHING = "nothing to undo: the hosts are as the release returned to needs them"


LOCK = Phase("lock", "Take the environment's deploy lock", lock.take_lock)
PREFLIGHT = Phase("preflight", "Pre-flight checklist (Steps 1 to 5)", feature="preflight")
BACKUP = Phase("backup", "Back up the database, drill its restore, rehearse the migrations on the copy (Steps 3 and 5)", database.take_backup)
BASELINE = Phase("baseline", "Measure the baseline of the release serving now (Step 20)", watch.measure_baseline)
BAKE = Phase("bake", "Watch the release against its baseline (Steps 13, 14 and 20)", watch.bake_release,
             on_failure=REPORT)
MIGRATE = Phase("migrate", "Execute and verify database migrations (Step 8)", database.migrate, on_failure=ROLL_BACK)
INDEXES = Phase("indexes", "Migration status and index update (Step 8)", database.after_migrate, on_failure=ROLL_BACK)
HEALTH = Phase("health", "Health checks (Step 10)", feature="health", on_failure=ROLL_BACK)
DRAIN = Phase("drain", "Take the hosts out of the load balancer", release.drain_hosts, on_failure=ROLL_BACK,
              per_batch=True)
RESTORE = Phase("restore", "Return the healthy hosts to the load balancer", release.restore_hosts,
                on_failure=ROLL_BACK, per_batch=True)
STOP = Phase("stop", "Stop current services (Step 7)", services.stop_services, on_failure=ROLL_BACK, per_batch=True)
START = Phase("start", "Start application services (Step 9)", services.start_services, on_failure=ROLL_BACK,
              per_batch=True)
RELOAD = Phase("reload", "Reload the app gracefully on the new release", services.reload_services,
               on_failure=ROLL_BACK, per_batch=True)
ROTATE = Phase("rotate", "Take each instance out of the load balancer, restart it on the new release, return it",
               release.rotate_instances, on_failure=ROLL_BACK, per_batch=True)
HOSTS = Phase("hosts", "Each host answers healthy on the new release (Step 10)", release.check_hosts,
              on_failure=ROLL_BACK, per_batch=True)


def deploy_sequence(env: Environment) -> list[Phase]:
    """The deploy's phases for the environment's rollout strategy, in runbook order.

    `maintenance` (the runbook's): each batch stops, switches, migrates (the first batch), starts.
    `rolling`: the backward-compatible migrations run first, with the old release serving; then each
    batch switches and reloads gracefully, so some workers answer at every moment (behind a
    `load_balancer`, its instances are drained, restarted and returned one at a time instead).
    """
    rolling = env.rollout.strategy == "rolling"
    reload = ROTATE if env.load_balancer else RELOAD
    drain, restore = env.rollout.drain is not None, env.rollout.restore is not None
    each_host = env.rollout.host_url is not None or len(rollout.plan(env)) > 1
    per_batch = [
        *([DRAIN] if drain else []),
        *([] if rolling else [STOP]),
        Phase("switch", "Switch the current release atomically (Step 7)", release.switch_release,
              on_failure=ROLL_BACK, per_batch=True),
        reload if rolling else replace(MIGRATE, per_batch=True, applies=first_batch, skip="migrated with the first batch"),
        *([] if rolling else [START]),
        *([HOSTS] if each_host else []),
        *([RESTORE] if restore else []),
    ]
    return [
        PREFLIGHT,
        LOCK,
        Phase("announce", "Pre-deployment notification (Step 6)", announce.announce),
        replace(BASELINE, applies=lambda d: d.previous is not None),
        BACKUP,
        Phase("prepare", "Unpack the new version beside the current one (Step 7)", release.prepare_release),
        Phase("configure", "Update configuration of the new release (Step 7)", release.configure_release),
        *([MIGRATE, INDEXES] if rolling else []),
        *per_batch,
        *([] if rolling else [INDEXES]),
        Phase("verify-deploy", "Verify the release in place and its services (Steps 7 to 9)", feature="deploy",
              on_failure=ROLL_BACK),
        HEALTH,
        Phase("monitoring", "Monitoring and alerting (Step 13)", feature="monitoring", on_failure=ROLL_BACK),
        Phase("verification", "Post-deployment verification (Steps 11 and 12)", feature="verification",
              on_failure=ROLL_BACK),
        *([Phase("performance", "Performance verification (Steps 11 and 20)", feature="performance",
                 on_failure=ROLL_BACK)] if env.performance else []),
        replace(BAKE, on_failure=ROLL_BACK),
        Phase("finish", "Record the release, keep the last releases, release the lock", lock.finish_deploy,
              on_failure=REPORT),
    ]


def rollback_sequence(env: Environment) -> list[Phase]:
    """Back to the previous release on the hosts the deploy changed (every app host for `invoke rollback`).

    `rolling` switches back and reloads before the down migrations: the previous release works with
    the newer schema, as the strategy requires of every migration.
    """
    rolling = env.rollout.strategy == "rolling"
    start = (replace(ROTATE, title="Take each instance out of the load balancer, restart it on the previous "
                     "version, return it (Step 16)") if rolling and env.load_balancer
             else replace(RELOAD if rolling else START, title="Start the previous version's services (Step 16)"))
    database_ = Phase("database", "Database rollback (Step 15)", database.revert_database, on_failure=ROLL_BACK,
                      applies=reverts_schema, skip=NOTHING)
    back = [
        Phase("switch-back", "Restore the previous version (Step 15)", release.switch_back, on_failure=ROLL_BACK,
              applies=changes_app, skip=NOTHING),
        replace(start, per_batch=False, applies=starts_app, skip="no release to start: none was live before, or nothing to undo"),
        *([replace(HOSTS, title="Each host answers healthy on the previous version (Step 16)", per_batch=False,
                   applies=starts_app, skip="no release to check: none was live before, or nothing to undo")]
          if env.rollout.host_url else []),
    ]
    return [
        LOCK,
        Phase("plan", "Choose the release to return to and check it can serve (Step 14)", release.plan_rollback),
        *([] if rolling else [replace(STOP, per_batch=False, applies=changes_app, skip=NOTHING)]),
        *([*back, database_] if rolling else [database_, *back]),
        *([replace(RESTORE, per_batch=False, applies=changes_app, skip=NOTHING)] if env.rollout.restore else []),
        Phase("verify-rollback", "Rollback verification (Step 16)", feature="rollback", on_failure=ROLL_BACK,
              applies=verifies, skip=NOTHING),
        replace(HEALTH, title="Health checks of the restored version (Step 10)",
                applies=lambda d: has_target(d) and verifies(d), skip="no release to check: none was live before"),
        Phase("finish", "Record the rollback, release the lock", lock.finish_rollback, on_failure=ROLL_BACK),
    ]


def waits_before_bake(phase: Phase, later: list[Phase]) -> bool:
    """Whether the run only waits during `phase` (its checks run in the checking process) and its next watch
    window is the bake: the time to import what the bake's chart is drawn with (`warmup`), which must
    not run on into a baseline or bake window."""
    watching = next((p.name for p in later if p.name in (BASELINE.name, BAKE.name)), None)
    return bool(phase.feature) and watching == BAKE.name


GATE = [PREFLIGHT]
WATCH = [BASELINE, BAKE]
"""`invoke watch`: the release serving now, measured then watched; a trigger is reported, not acted on."""

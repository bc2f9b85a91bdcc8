"""Step 3's backup, Step 8's migrations and Step 15's database rollback."""

from runbook.database import backup, commands, migrations, queries, rows
from runbook.hosts.commands import KILL_AFTER
from runbook.engine import planner, state
from runbook.engine.deployment import Deployment
from runbook.errors import ActionFailed
from runbook.release import package, releases


def take_backup(d: Deployment) -> list[str]:
    """Snapshot the protected tables, then dump the database and drill its restore."""
    env = d.env
    d.snapshot = rows.snapshot(env, env.rollback.protected_tables)
    taken = backup.take(env, d.release or f"{d.run.started:%Y%m%dT%H%M%SZ}-manual", d.run.id, _to_rehearse(d))
    d.backup = taken.as_record()
    d.run.facts["backup"] = d.backup
    d.run.facts["snapshot"] = {table: {"rows": t["rows"]} for table, t in d.snapshot.items()}
    return [f"{taken.format}-format dump {taken.path} on {taken.host}: {taken.size_bytes} bytes, sha256 {taken.sha256}, "
            f"WAL position {taken.lsn}",
            f"pg_restore --list lists all {len(taken.tables)} tables: {', '.join(taken.tables)}",
            *taken.drill.lines(),
            *(["the pending migrations are not rehearsed: database.drill.rehearse is off"]
              if d.package is not None and not env.database.drill.rehearse else [])]


def _to_rehearse(d: Deployment) -> list[migrations.Migration]:
    """A deploy's pending migrations, unless the environment turned their rehearsal on the drill's copy off."""
    if not d.env.database.drill.rehearse or d.package is None:
        return []
    applied = queries.applied_versions(d.env)
    return migrations.pending(migrations.in_package(package.read(d.package, package.texts(d.env)).files, d.env.app.migrations.dir), applied)


def in_release(d: Deployment, folder: str, template: list[str], version: str = "") -> str:
    """Run one of the app's migration commands inside a release folder on the migrate host, under the
    `migrate` deadline: its sessions wait `deadlines.lock` at most for a lock another session holds, and a
    statement it leaves behind when stopped ends soon after it on the server."""
    limits = d.env.deadlines
    argv = commands.session_limits(migrations.command(template, d.env.python, version),
                                   limits.migrate + 2 * KILL_AFTER, limits.lock)
    return releases.run_in(d.env, state.primary(d.env), folder, argv, kind="migrate")


def migrate(d: Deployment) -> list[str]:
    """Run the release's pending migrations and verify they are applied; nothing else, since under
    `maintenance` the app does not answer meanwhile."""
    env, folder = d.env, releases.folder(d.env, d.release)
    before = queries.applied_versions(env)
    contents = package.read(d.package, package.texts(env))
    expected = {m.version for m in migrations.in_package(contents.files, env.app.migrations.dir)}
    if expected <= before:
        notes = [f"no pending migration: the database has all {len(expected)} of the package"]
    else:
        d.migrating = True  # stays so only if the run is interrupted while the command may still run
        try:
            notes = [in_release(d, folder, env.app.migrations.up)]
        except ActionFailed:  # the command ended: it failed, or was stopped at its deadline
            d.migrating = False
            raise
        d.migrating = False
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
    query = env.app.migrations.status_query
    notes = [in_release(d, folder, env.app.migrations.status),
             f"{query}: {', '.join(queries.query_column(env, query))}"]
    return notes + [in_release(d, folder, command) for command in env.app.migrations.after]


def revert_database(d: Deployment) -> list[str]:
    """What the rollback's plan chose: nothing (code only), down migrations back to the recorded schema, or
    the backup restored."""
    env = d.env
    if d.restore_db:
        if not d.backup or not d.backup.get("tables"):
            raise ActionFailed("no verified backup of this run to restore")
        backup.restore(env, d.backup)
        d.run.facts["database_restored"] = {
            "backup": d.backup["path"],
            "note": "the database was restored from the pre-deploy backup: every write made since it was taken was discarded"
                    + (f": {d.plan.loss}" if d.plan and d.plan.loss else ""),
        }
        return [f"restored {d.backup['path']}; writes made after it was taken are discarded"]
    now = queries.schema_version(env)
    if d.plan is not None and d.plan.path == planner.CODE:
        return [f"code only: the schema stays at {now or 'none'}, no data touched ({d.plan.why})"]
    if now == d.target_schema and not d.migrating:
        return [f"schema already at {now or 'none'}: nothing to revert"]
    newest = d.release if d.release and d.release in releases.listing(env, state.primary(env)) else None
    if newest is None:
        raise ActionFailed(f"schema is at {now} but no release folder holds its down migrations")
    out = in_release(d, releases.folder(env, newest), env.app.migrations.down, d.target_schema or "0")
    after = queries.schema_version(env)
    if after != d.target_schema:
        raise ActionFailed(f"schema is at {after or 'none'} after the down migrations, expected {d.target_schema or 'none'}")
    return [out, f"schema reverted from {now} to {after or 'none'} with the release's down migrations"]

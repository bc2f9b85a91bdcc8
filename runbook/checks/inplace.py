"""Steps 7 to 9 and 16: the release in place on every app host, its migrations, its services, and
after a rollback the schema and the protected rows."""

from runbook.config import Environment
from runbook.database import migrations, queries, rows
from runbook.engine import state
from runbook.engine.context import RunContext
from runbook.errors import ActionFailed, CheckFailed
from runbook.findings import Finding, NotConfigured
from runbook.hosts import connection
from runbook.release import package, releases, services


def deployed(context: RunContext) -> str:
    """The release the deploy put in place; `CheckFailed` when it put none."""
    if not context.release:
        raise CheckFailed("no release to verify: nothing was deployed")
    return context.release


def files_as_packaged(env: Environment, release: str) -> list[Finding]:
    """Every app host holds the release with every file as its manifest says."""
    def check(host) -> Finding:
        try:
            return Finding(f"host {host.name}", True, releases.verify_files(env, host, release))
        except ActionFailed as e:
            return Finding(f"host {host.name}", False, str(e))

    return connection.each(env.hosts_with("app"), check)


def current_links(env: Environment, release: str | None) -> list[Finding]:
    return connection.each(env.hosts_with("app"), lambda h: releases.points_at(env, h, release))


def configuration_in_place(env: Environment, release: str) -> list[Finding]:
    return [f for h in env.hosts_with("app") for f in releases.config_in_place(env, h, release)]


def migrations_applied(env: Environment, release: str) -> list[Finding]:
    shipped = releases.migration_versions(env, state.primary(env), release)
    missing = sorted(shipped - queries.applied_versions(env), key=int)
    return [Finding(f"release {release}", not missing,
                    f"not applied: {', '.join(missing)}" if missing else f"all {len(shipped)} migrations applied")]


def serving(release: str | None) -> str:
    """The release a rollback returned to; `NotConfigured` when none was live before the deploy."""
    if release is None:
        raise NotConfigured("no release was live before the deploy: there is nothing to run")
    return release


def services_running(env: Environment, release: str | None) -> list[Finding]:
    serving(release)
    return connection.each(services.placements(env), lambda pair: services.running(env, *pair))


def schema_at(env: Environment, expected: str | None) -> list[Finding]:
    now = queries.schema_version(env)
    return [Finding("database", now == expected, f"schema at {now or 'none'} (expected {expected or 'none'})")]


def rows_kept_by_the_release(env: Environment, context: RunContext) -> list[Finding]:
    """After a deploy's verification: the protected tables that no migration of the release names have
    every row of the snapshot taken before it, unchanged; a table a migration names is shown, not compared."""
    if not context.snapshot or not context.version:
        raise NotConfigured("no snapshot was taken before a deploy in this run: nothing to compare")
    shipped = package.read(env.app.package_dir / package.file_name(env.app.name, context.version),
                           package.texts(env)).files
    before = int(context.target_schema or 0)
    new = [m for m in migrations.in_package(shipped, env.app.migrations.dir) if int(m.version) > before]
    named = migrations.tables_named(new, list(context.snapshot))
    kept = {table: rows for table, rows in context.snapshot.items() if table not in named}
    found = rows.unchanged(env, kept) if kept else []
    return found + [Finding(f"table {t}", True, f"changed on purpose by {', '.join(m)}: not compared")
                    for t, m in named.items()]


def rows_unchanged(env: Environment, context: RunContext) -> list[Finding]:
    """The protected tables' rows equal the snapshot taken before the run changed anything."""
    if not context.snapshot:
        raise NotConfigured("no snapshot was taken before a deploy in this run: nothing to compare")
    return rows.unchanged(env, context.snapshot)

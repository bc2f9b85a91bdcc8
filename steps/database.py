"""Steps about the database: connections, the backup tooling and folder, pending migrations."""

from pytest_bdd import then

from runbook.database import queries, migrations
from runbook.release import rollout
from runbook.findings import Finding, require


@then('the database answers "SELECT 1"')
def database_answers(environment, evidence):
    evidence.text("query", queries.select_one(environment))


@then("the pg_dump client is not older than the database server")
def pg_dump_not_older(environment, evidence):
    require(evidence.findings([queries.pg_dump_compatible(environment)]))


@then("the backup folder is writable with room for a dump of the database")
def backup_folder_ready(environment, evidence):
    require(evidence.findings([queries.backup_room(environment)]))


@then("the migrations the package will apply are listed", target_fixture="pending_migrations")
def pending_migrations(environment, package_contents, evidence):
    found = migrations.in_package(package_contents.files, environment.app.migrations.dir)
    pending = migrations.pending(found, queries.applied_versions(environment))
    listing = "\n".join(m.label for m in pending) or "none: the database has every migration of the package"
    evidence.text(f"pending migrations ({len(pending)} of {len(found)} in the package)", listing)
    return pending


@then("every pending migration has a down part")
def migrations_reversible(pending_migrations, evidence):
    found = [
        Finding(f"migration {m.label}", bool(m.down), "has a down part" if m.down else "has no down part: it cannot be rolled back")
        for m in pending_migrations
    ]
    if found:
        require(evidence.findings(found))
    else:
        evidence.text("migrations", "no pending migration")


@then("every pending migration is safe while the previous release still serves")
def migrations_backward_compatible(environment, pending_migrations, evidence):
    if not rollout.previous_release_meets_new_schema(environment):
        evidence.text("migrations", "not required: every app host is stopped before the migrations run")
        return
    found = [
        Finding(f"migration {m.label}", not hazards, "; ".join(hazards) or "only adds to the schema")
        for m in pending_migrations for hazards in [migrations.rolling_hazards(m)]
    ]
    if found:
        require(evidence.findings(found))
    else:
        evidence.text("migrations", "no pending migration")

"""Steps about the database: connections, the backup tooling and folder, pending migrations."""

from pytest_bdd import then

from runbook.checks import schema
from runbook.database import queries


@then('the database answers "SELECT 1"')
def database_answers(environment, evidence):
    evidence.text("query", queries.select_one(environment))


@then("the pg_dump client is not older than the database server")
def pg_dump_not_older(environment, evidence):
    evidence.require([evidence.checked(queries.pg_dump_compatible, environment)])


@then("the backup folder is writable with room for a dump of the database")
def backup_folder_ready(environment, evidence):
    evidence.require([evidence.checked(queries.backup_room, environment)])


@then("the database login may create the scratch database of the restore drill")
def drill_can_run(environment, evidence):
    evidence.require([queries.may_create_databases(environment)])


@then("the migrations the package will apply are listed", target_fixture="pending_migrations")
def pending_migrations(environment, package_contents, evidence):
    pending = schema.pending(environment, package_contents)
    evidence.text(pending.title, pending.listing)
    return pending


@then("every pending migration has a down part")
def migrations_reversible(pending_migrations, evidence):
    evidence.require(schema.reversible(pending_migrations))


@then("every pending migration is undone whole if it fails")
def migrations_undoable(pending_migrations, evidence):
    evidence.require(schema.undoable(pending_migrations))


@then("every pending migration is safe while the previous release still serves")
def migrations_backward_compatible(environment, pending_migrations, evidence):
    evidence.require(schema.backward_compatible(environment, pending_migrations))

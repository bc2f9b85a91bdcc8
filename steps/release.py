"""Steps about the release in place and the rollback: folders, links, configuration, schema, services, data."""

from pytest_bdd import given, then

from runbook.checks import inplace
from runbook.database import queries


@given("the release this deploy put in place", target_fixture="expected_release")
def deployed_release(deployment, evidence):
    evidence.text("release", inplace.deployed(deployment))
    return deployment.release


@given("the release the rollback returned to", target_fixture="expected_release")
def rollback_target(deployment, evidence):
    evidence.text("release", deployment.target or "none: no release was live before the deploy")
    return deployment.target


@given("the release the rollback returned to serves")
def returned_release_serves(expected_release):
    inplace.serving(expected_release)


@then("every app host holds the release with every file as packaged")
def release_files(environment, expected_release, evidence):
    evidence.require(inplace.files_as_packaged(environment, expected_release))


@then("the current link points at the release on every app host")
def current_link(environment, expected_release, evidence):
    evidence.require(inplace.current_links(environment, expected_release))


@then("every configuration file of the release is in place with its mode")
def configuration_in_place(environment, expected_release, evidence):
    evidence.require(inplace.configuration_in_place(environment, expected_release), "no configuration file is configured")


@then("every migration of the release is applied")
def migrations_applied(environment, expected_release, evidence):
    evidence.require(inplace.migrations_applied(environment, expected_release))


@then("the latest applied migrations are shown")
def latest_migrations(environment, evidence):
    query = environment.app.migrations.status_query
    evidence.text(query, "\n".join(queries.query_column(environment, query)) or "(none)")


@then("every service runs on each of its hosts")
def services_run(environment, expected_release, evidence):
    evidence.require(inplace.services_running(environment, expected_release), "no service is configured")


@then("the database schema is at the version recorded before the deploy")
def schema_restored(environment, deployment, evidence):
    evidence.require(inplace.schema_at(environment, deployment.target_schema))


@then("every protected table that no migration of the release names has the rows it had before the deploy")
def data_kept(environment, deployment, evidence):
    evidence.require(inplace.rows_kept_by_the_release(environment, deployment))


@then("every protected table has the rows it had before the deploy")
def data_intact(environment, deployment, evidence):
    evidence.require(inplace.rows_unchanged(environment, deployment))

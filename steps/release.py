"""Steps about the release in place and the rollback: folders, links, configuration, schema, services, data."""

import pytest
from pytest_bdd import given, then

from runbook.database import queries
from runbook.hosts import connection
from runbook.release import releases, services
from runbook.engine import state
from runbook.errors import ActionFailed, CheckFailed
from runbook.findings import Finding, require


@given("the release this deploy put in place", target_fixture="expected_release")
def deployed_release(deployment, evidence):
    if not deployment.get("release"):
        raise CheckFailed("no release to verify: nothing was deployed")
    evidence.text("release", deployment["release"])
    return deployment["release"]


@given("the release the rollback returned to", target_fixture="expected_release")
def rollback_target(deployment, evidence):
    evidence.text("release", deployment.get("target") or "none: no release was live before the deploy")
    return deployment.get("target")


@then("every app host holds the release with every file as packaged")
def release_files(environment, expected_release, evidence):
    def check(host) -> Finding:
        try:
            return Finding(f"host {host.name}", True, releases.verify_files(environment, host, expected_release))
        except ActionFailed as e:
            return Finding(f"host {host.name}", False, str(e))

    require(evidence.findings(connection.each(environment.hosts_with("app"), check)))


@then("the current link points at the release on every app host")
def current_link(environment, expected_release, evidence):
    found = connection.each(environment.hosts_with("app"), lambda h: releases.points_at(environment, h, expected_release))
    require(evidence.findings(found))


@then("every configuration file of the release is in place with its mode")
def configuration_in_place(environment, expected_release, evidence):
    found = [f for h in environment.hosts_with("app") for f in releases.config_in_place(environment, h, expected_release)]
    require(evidence.findings(found), "no configuration file is configured")


@then("every migration of the release is applied")
def migrations_applied(environment, expected_release, evidence):
    shipped = releases.migration_versions(environment, state.primary(environment), expected_release)
    applied = queries.applied_versions(environment)
    missing = sorted(shipped - applied, key=int)
    require(evidence.findings([Finding(
        f"release {expected_release}", not missing,
        f"not applied: {', '.join(missing)}" if missing else f"all {len(shipped)} migrations applied",
    )]))


@then("the latest applied migrations are shown")
def latest_migrations(environment, evidence):
    query = environment.app.migrations.status_query
    evidence.text(query, "\n".join(queries.query_column(environment, query)) or "(none)")


@then("every service runs on each of its hosts")
def services_run(environment, expected_release, evidence):
    if expected_release is None:
        pytest.skip("no release was live before the deploy: there is nothing to run")
    found = connection.each(services.placements(environment), lambda pair: services.running(environment, *pair))
    require(evidence.findings(found), "no service is configured")


@then("the database schema is at the version recorded before the deploy")
def schema_restored(environment, deployment, evidence):
    now, expected = queries.schema_version(environment), deployment.get("target_schema")
    require(evidence.findings([Finding("database", now == expected, f"schema at {now or 'none'} (expected {expected or 'none'})")]))


@then("every protected table has the rows it had before the deploy")
def data_intact(environment, deployment, evidence):
    before = deployment.get("snapshot")
    if not before:
        pytest.skip("no snapshot was taken before a deploy in this run: nothing to compare")
    after = queries.snapshot(environment, list(before))
    require(evidence.findings(queries.unchanged(before, after)))

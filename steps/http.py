"""Steps about the running app over HTTP: its health and status endpoints (Step 10) and the smoke
tests of its core journeys (Steps 11 and 12)."""

import json

from pytest_bdd import given, parsers, then

from runbook.checks import connectivity, journeys, probes, smoke


@then(parsers.parse("the health endpoint answers with HTTP status {status:d}"))
def health_answers(environment, status, evidence):
    evidence.text("health", str(probes.answers(environment, environment.endpoints.health, status)))


@then("the status endpoint reports the version being released")
@then("the status endpoint reports the version rolled back to")
def status_reports_version(environment, release_version, evidence):
    answer = probes.reports_version(environment, release_version)
    evidence.text("status", f"{answer}\n{json.dumps(answer.body)}")


@then("every external dependency of the app answers")
def every_dependency_answers(environment, evidence):
    evidence.require(connectivity.dependencies_answer(environment))


@given("the smoke test user has logged in", target_fixture="smoke_client")
def smoke_client(environment, evidence):
    client = smoke.log_in(environment)
    evidence.text("login", f"logged in as {client}: the app issued a token")
    return client


@then("a wrong password is refused")
def wrong_password_refused(environment, evidence):
    evidence.require([smoke.wrong_password_refused(environment)])


@then("an item the user creates reads back the same")
def item_reads_back(smoke_client, evidence):
    evidence.require([smoke.item_round_trip(smoke_client)])


@then("a file the user uploads downloads with identical content")
def file_downloads_identical(smoke_client, evidence):
    evidence.require([smoke.file_round_trip(smoke_client)])


@then("every request that needs a login is refused without one")
def unauthenticated_refused(environment, evidence):
    evidence.require(smoke.unauthenticated_refused(environment))


@then("a job the user submits is processed within its deadline")
def job_processed(environment, smoke_client, evidence):
    evidence.require([journeys.job_processed(environment, smoke_client)])


@then("a value the user caches reads back the same", target_fixture="cached_value")
def value_cached(environment, smoke_client, evidence):
    finding, key, written = journeys.cache_written(environment, smoke_client)
    evidence.require([finding])
    return key, written


@then("the cached value is gone once its time to live has passed")
def cached_value_expires(environment, smoke_client, cached_value, evidence):
    evidence.require([journeys.cache_expired(environment, smoke_client, *cached_value)])


@then("the application's call to the external API answers")
def external_api_answers(smoke_client, evidence):
    evidence.require([journeys.external_api_answers(smoke_client)])

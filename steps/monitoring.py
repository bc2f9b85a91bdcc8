"""Steps about the monitoring server (Step 13): what it scrapes and the alert rules it holds."""

from pytest_bdd import then

from runbook.checks import monitoring


@then("the monitoring server collects the metrics of every instance of the release, each one up")
def release_scraped(environment, evidence):
    evidence.require(monitoring.scraped(environment, environment.endpoints.settle_seconds))


@then("every alert the environment file asks for is loaded in the monitoring server and healthy")
def alerts_loaded(environment, evidence):
    evidence.require(monitoring.rules_loaded(environment, environment.endpoints.settle_seconds))

"""Steps about the configuration the release will receive."""

from pytest_bdd import then

from runbook.checks import deployable


@then("every configuration file renders with all of its secrets")
def configuration_renders(environment, evidence):
    evidence.require(deployable.configuration_renders(environment), "no configuration file is configured")


@then("the configuration to deploy is compared with the one deployed now")
def configuration_diff(environment, evidence):
    evidence.texts(deployable.configuration_changes(environment))

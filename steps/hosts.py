"""Steps about the environment and its hosts: reachability, resources, disks, files, connectivity."""

import pytest
from pytest_bdd import given, then

from runbook.checks import connectivity
from runbook.hosts import survey


@given("the target environment")
def target_environment(environment, evidence):
    evidence.text("environment", survey.describe(environment))


@then("every host answers within its connect timeout")
def hosts_answer(environment, evidence):
    evidence.require(survey.reachable(environment.hosts))


@pytest.fixture(scope="session")
def gathered_facts(environment) -> survey.HostFacts:
    """Every host's facts, gathered once per phase whatever number of scenarios read them."""
    return survey.gather(environment.hosts, environment.thresholds.mounts)


@given("the facts of every host", target_fixture="host_facts")
def host_facts(gathered_facts, evidence):
    evidence.text("facts", survey.facts_text(gathered_facts))
    return gathered_facts


@then("every host has at least the required number of CPUs")
def enough_cpus(environment, host_facts, evidence):
    evidence.require(survey.cpus(host_facts, environment.thresholds.min_cpus))


@then("every host has at least the required memory")
def enough_memory(environment, host_facts, evidence):
    evidence.require(survey.memory(host_facts, environment.thresholds.min_memory_mb))


@then("every configured mount on every host has at least the required share of free space")
def enough_disk(environment, host_facts, evidence):
    evidence.require(survey.disk_space(host_facts, environment.thresholds.disk_free_percent))


@then("every app host reaches the database server")
def app_hosts_reach_database(environment, evidence):
    evidence.require(connectivity.database_reached(environment), "no host has the app role")


@then("every app host reaches each external service it depends on")
def app_hosts_reach_dependencies(environment, evidence):
    evidence.require(evidence.checked(connectivity.dependencies_reached, environment),
                     "no host has the app role")


@then("every required file is present with its owner and mode")
def required_files(environment, evidence):
    evidence.require(survey.required_files_of(environment), "no required file is configured")

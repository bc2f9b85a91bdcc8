"""Steps about the environment and its hosts: reachability, resources, disks, files, connectivity."""

import pytest
from pytest_bdd import given, then

from runbook.database import queries
from runbook.checks import dependencies
from runbook.hosts import connection, survey
from runbook.findings import require


@given("the target environment")
def target_environment(environment, evidence):
    lines = [f"{environment.name}: {environment.description}", f"file: {environment.source}"]
    lines += [f"host {h.name} ({h.spec}) roles: {', '.join(h.roles)}" for h in environment.hosts]
    evidence.text("environment", "\n".join(lines))


@then("every host answers within its connect timeout")
def hosts_answer(environment, evidence):
    require(evidence.findings(connection.each(environment.hosts, survey.reachability)))


@pytest.fixture(scope="session")
def gathered_facts(environment) -> survey.HostFacts:
    """Every host's facts, gathered once per phase whatever number of scenarios read them."""
    return survey.gather(environment.hosts, environment.thresholds.mounts)


@given("the facts of every host", target_fixture="host_facts")
def host_facts(gathered_facts, evidence):
    evidence.text("facts", "\n".join(
        f"{name}: {'does not answer: ' if isinstance(f, survey.Unreachable) else ''}{f}" for name, f in gathered_facts.items()))
    return gathered_facts


@then("every host has at least the required number of CPUs")
def enough_cpus(environment, host_facts, evidence):
    require(evidence.findings(survey.cpus(host_facts, environment.thresholds.min_cpus)))


@then("every host has at least the required memory")
def enough_memory(environment, host_facts, evidence):
    require(evidence.findings(survey.memory(host_facts, environment.thresholds.min_memory_mb)))


@then("every configured mount on every host has at least the required share of free space")
def enough_disk(environment, host_facts, evidence):
    require(evidence.findings(survey.disk_space(host_facts, environment.thresholds.disk_free_percent)))


@then("every app host reaches the database server")
def app_hosts_reach_database(environment, evidence):
    target = [queries.address(environment)]
    found = connection.each(environment.hosts_with("app"), lambda h: survey.reaches(h, target))
    require(evidence.findings([f for per_host in found for f in per_host]), "no host has the app role")


@then("every app host reaches each external service it depends on")
def app_hosts_reach_dependencies(environment, evidence):
    targets = [a for a in map(dependencies.address, environment.dependencies) if a]
    if not targets:
        evidence.text("dependencies", "no network dependency is configured")
        return
    found = connection.each(environment.hosts_with("app"), lambda h: survey.reaches(h, targets))
    require(evidence.findings([f for per_host in found for f in per_host]), "no host has the app role")


@then("every required file is present with its owner and mode")
def required_files(environment, evidence):
    found = connection.each(environment.hosts, lambda h: survey.required_files(
        h, [f for f in environment.files if set(f.roles) & set(h.roles)]))
    require(evidence.findings([f for per_host in found for f in per_host]), "no required file is configured")

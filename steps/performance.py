"""Steps about the app under load (runbook Steps 11 and 20): the load is sent once per run of the feature
and every scenario judges what it measured: response time, errors, memory and CPU on each host."""

import functools

import pytest
from pytest_bdd import given, then

from runbook.checks import performance
from runbook.config import Environment
from runbook.findings import require


@pytest.fixture(scope="session")
def load_once(environment):
    """The load, sent on first use and shared by every scenario of the run (a phase is one run)."""
    return functools.cache(lambda: performance.measure(environment))


@given("the application has been under the configured load", target_fixture="measured")
def under_load(environment, load_once, evidence):
    if environment.performance is None:
        pytest.skip(f"no performance section is configured for {environment.name}")
    measured = load_once()
    evidence.text("load", str(measured.load))
    evidence.text("memory and CPU on each host", measured.usage_text())
    return measured


def _limit(environment: Environment, key: str) -> float:
    """The configured limit `key`; the scenario is skipped, saying why, when none is set."""
    limit = getattr(environment.performance, key)
    if limit is None:
        pytest.skip(f"no limit configured: performance.{key} is not set for {environment.name} "
                    "(measured, not judged: see the load's evidence)")
    return limit


@then("the 95th percentile response time is within the allowed multiple of the baseline")
def latency_within(environment, deployment, measured, evidence):
    if "baseline" not in deployment:
        pytest.skip("no pre-deploy baseline was given: a deploy measures it before changing anything")
    baseline = deployment["baseline"] or {}
    found = performance.latency(measured.load, environment.performance.latency_factor,
                                baseline.get("p95_seconds"), first_deploy=deployment.get("target") is None)
    require(evidence.findings([found]))


@then("the share of failed requests is at most the allowed error rate")
def errors_within(environment, deployment, measured, evidence):
    baseline = deployment.get("baseline") or {}
    found = performance.error_rate(measured.load, environment.performance.max_error_rate, baseline.get("error_rate"))
    require(evidence.findings([found]))


@then("the resident memory of the app's processes on each host is at most the limit")
def memory_within(environment, measured, evidence):
    limit = _limit(environment, "max_memory_mb")
    require(evidence.findings(performance.memory(measured.usage, limit)), "no host runs the measured service")


@then("the CPU the app's processes used on each host is at most the limit")
def cpu_within(environment, measured, evidence):
    limit = _limit(environment, "max_cpu_percent")
    require(evidence.findings(performance.cpu(measured.usage, limit)), "no host runs the measured service")

"""Steps about the app under load (runbook Steps 11 and 20): the load is sent once per run of the feature
and every scenario judges what it measured: response time, errors, memory and CPU on each host."""

import functools

import pytest
from pytest_bdd import given, then

from runbook.checks import performance


@pytest.fixture(scope="session")
def load_once(environment):
    """The load, sent on first use and shared by every scenario of the run (a phase is one run)."""
    return functools.cache(lambda: performance.measure(environment))


@given("the application has been under the configured load", target_fixture="measured")
def under_load(environment, load_once, evidence):
    performance.section(environment)
    measured = load_once()
    evidence.texts({"load": str(measured.load), "memory and CPU on each host": measured.usage_text()})
    return measured


@then("the 95th percentile response time is within the allowed multiple of the baseline")
def latency_within(environment, deployment, measured, evidence):
    evidence.require(performance.latency_of_run(environment, measured.load, deployment))


@then("the share of failed requests is at most the allowed error rate")
def errors_within(environment, deployment, measured, evidence):
    evidence.require(performance.error_rate_of_run(environment, measured.load, deployment))


@then("the resident memory of the app's processes on each host is at most the limit")
def memory_within(environment, measured, evidence):
    limit = performance.limit(environment, "max_memory_mb")
    evidence.require(performance.memory(measured.usage, limit), "no host runs the measured service")


@then("the CPU the app's processes used on each host is at most the limit")
def cpu_within(environment, measured, evidence):
    limit = performance.limit(environment, "max_cpu_percent")
    evidence.require(performance.cpu(measured.usage, limit), "no host runs the measured service")

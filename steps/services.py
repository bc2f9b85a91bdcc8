"""Steps about the services the app depends on: HTTP APIs, queues, caches, storage."""

from pytest_bdd import parsers, then

from runbook.checks import connectivity


@then(parsers.parse('every "{role}" dependency answers'))
def dependencies_answer(environment, role, evidence):
    evidence.require(connectivity.dependencies_answer(environment, role))

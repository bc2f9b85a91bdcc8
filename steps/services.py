"""Steps about the services the app depends on: HTTP APIs, queues, caches, storage."""

import pytest
from pytest_bdd import parsers, then

from runbook.checks import dependencies
from runbook.findings import require


@then(parsers.parse('every "{role}" dependency answers'))
def dependencies_answer(environment, role, evidence):
    configured = [d for d in environment.dependencies if d.role == role]
    if not configured:
        pytest.skip(f"no {role} dependency is configured for {environment.name}")
    found = [f for dep in configured for f in dependencies.probe(environment, dep)]
    require(evidence.findings(found))

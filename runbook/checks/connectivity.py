"""Step 1's network connectivity and Step 4's service dependencies: what the app hosts reach, and
which dependencies answer."""

from runbook.checks import dependencies
from runbook.config import Environment
from runbook.database import queries
from runbook.findings import Finding, NotConfigured, passed_with
from runbook.hosts import connection, survey


def _from_app_hosts(env: Environment, targets: list[tuple[str, int]]) -> list[Finding]:
    found = connection.each(env.hosts_with("app"), lambda h: survey.reaches(h, targets))
    return [f for per_host in found for f in per_host]


def database_reached(env: Environment) -> list[Finding]:
    """Every app host opens a TCP connection to the database server."""
    return _from_app_hosts(env, [queries.address(env)])


def dependencies_reached(env: Environment) -> list[Finding]:
    """Every app host opens a TCP connection to each network dependency."""
    targets = [a for a in map(dependencies.address, env.dependencies) if a]
    if not targets:
        return passed_with("dependencies", "no network dependency is configured")
    return _from_app_hosts(env, targets)


def dependencies_answer(env: Environment, role: str | None = None) -> list[Finding]:
    """Every dependency (of `role`, or all) answers its protocol's probe."""
    configured = [d for d in env.dependencies if role is None or d.role == role]
    if not configured:
        raise NotConfigured(f"no {role + ' ' if role else ''}dependency is configured for {env.name}")
    return [f for dep in configured for f in dependencies.probe(env, dep)]

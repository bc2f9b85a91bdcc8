"""The preflight's checks that wait longest on other processes (pg_dump's version, the backup folder, the
external services, the app's refusals and its audit log) start in threads as its session begins, while the
checks before them run (`idle.alongside`); each step shows what its check found, and when."""

import pytest

from runbook.checks import connectivity, idle, security
from runbook.database import queries

PREFLIGHT = [queries.pg_dump_compatible, queries.backup_room, connectivity.dependencies_reached,
             security.refused_without_login, security.audit_records_login]
"""None changes what another check reads (the audit check's login adds its own event only), and every call they
make has a deadline of its own."""


@pytest.fixture(scope="session", autouse=True)
def preflight_checks_alongside(request):
    if any(item.get_closest_marker("preflight") for item in request.session.items):
        env = request.getfixturevalue("environment")
        for check in PREFLIGHT:
            idle.alongside(check, env)

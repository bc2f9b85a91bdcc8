"""The processes of the local stack beyond the database and the app's own services.

Each part is chosen once from the environment's `local:` section: `prepare` writes what its
programs need (configuration, certificates) and says what it did, `programs` are the supervisord
programs that run it.
"""

from runbook.config import Environment
from runbook.local.paths import Paths
from runbook.local.supervisor import Program


class Part:
    """One piece of the local stack."""

    def prepare(self, env: Environment, p: Paths) -> list[str]:
        return []

    def programs(self, env: Environment, p: Paths) -> list[Program]:
        return []


def parts(env: Environment) -> list[Part]:
    """The stack parts the environment's `local:` section asks for."""
    from runbook.local.haproxy import Haproxy  # the parts build on Part, defined above
    from runbook.local.prometheus import Prometheus
    from runbook.local.services import Services

    return [*([Haproxy()] if env.local.haproxy else []), *([Prometheus()] if env.local.prometheus else []),
            *([Services()] if env.local.api or env.local.auth else [])]

"""Opening an environment, the one way every task, the status and the checks do it: its file loaded
and validated, the local stack started where the caller may act, its secrets resolved."""

from runbook import config, local
from runbook.config import Environment


def open_environment(name: str, start_local: bool = True) -> Environment:
    """The validated environment `name` (a name under environments/ or a file), ready to use.

    `ConfigError` (exit 2) for a bad file or a secret that cannot be resolved.
    """
    env = config.load_environment(name)
    if start_local and env.local is not None:
        local.up(env)
    config.resolve_secrets(env)
    return env

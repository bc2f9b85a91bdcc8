"""Opening an environment, the one way every task, the status and the checks do it: its file loaded
and validated, the local stack started where the caller may act, its secrets resolved."""

from runbook import config, local
from runbook.config import Environment
from runbook.engine import lock
from runbook.errors import RunbookError


def open_environment(name: str, start_local: bool = True, seen_up: bool = False) -> Environment:
    """The validated environment `name` (a name under environments/ or a file), ready to use.

    `start_local`: a task that acts starts what the local stack lacks. A read-only one (status,
    preflight, the checks) never does: a local environment that is down is refused, saying how to
    start it. `seen_up`: the run this process serves has just seen the local stack up (its checks
    run in a child): no need to look again. `ConfigError` (exit 2) for a bad file or a secret that
    cannot be resolved.
    """
    env = config.load_environment(name)
    if env.local is not None:
        if start_local:
            start(env)
        elif not seen_up and not local.is_up(env):
            raise RunbookError(f"the local environment {env.name} is down: start it with "
                               f"`invoke local.up --env {name}`")
    config.resolve_secrets(env)
    return env


def start(env: Environment) -> list[str]:
    """Start the local stack; the app's programs only when no run holds the lock: after a killed run
    they would serve whatever `current` points at, which recovery must decide first."""
    local.paths(env)  # refuses a non-local environment (exit 2) before its hosts are read for the lock
    return local.up(env, programs=lock.read(env) is None)

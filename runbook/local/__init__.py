"""The embedded local environment: a private PostgreSQL cluster, a supervisord, the processes of
the local stack and the app's folders, all under the environment's state folder (`.local/` by
default, gitignored).

`up` starts what is not running and leaves alone what is, so a second `up` changes nothing; when
all is up it costs one status call to supervisord and one connection to PostgreSQL. `down` stops what
`up` started.
"""

from runbook.config import Environment
from runbook.local import layout, postgres, stack, supervisor
from runbook.local.paths import Paths, paths
from runbook.local.supervisor import supervisorctl

__all__ = ["Paths", "paths", "supervisorctl", "up", "down", "is_up", "start_programs", "stop_postgres"]

stop_postgres = postgres.stop


def up(env: Environment, programs: bool = True) -> list[str]:
    """Start what is not running (the app's programs too, with `programs`); the list says what was
    done (empty when all was up)."""
    p = paths(env)
    p.state.mkdir(parents=True, exist_ok=True)
    done = layout.folders(env) + layout.secrets(env, p)
    if env.database.url is None:
        done += postgres.up(env, p)
    parts = stack.parts(env)
    for part in parts:
        done += part.prepare(env, p)
    own = [prog for part in parts for prog in part.programs(env, p)]
    started, listed = supervisor.up(env, p, supervisor.services(env) + own)
    if started:
        supervisor.await_listening(p, own, env.deadlines.services)
    return done + started + (start_programs(env, listed) if programs else [])


def start_programs(env: Environment, listed: dict[str, str] | None = None) -> list[str]:
    """Start the app's stopped programs on the current release, when there is one; `listed`: the
    programs' states just asked of supervisord, so as not to ask again."""
    p = paths(env)
    if listed is None:
        listed = supervisor.status(p) or {}
    if env.app.current.exists() and any(state in ("STOPPED", "EXITED") for state in listed.values()):
        supervisorctl(p, "start", "all")
        return [f"started the app's services on the current release ({env.app.current.resolve().name})"]
    return []


def down(env: Environment) -> list[str]:
    """Stop supervisord (and with it the app and the stack) and the private PostgreSQL cluster."""
    p = paths(env)
    done = []
    if supervisor.running(p):
        supervisorctl(p, "shutdown")
        done.append("stopped supervisord and its programs")
    if env.database.url is None and postgres.running(p):
        done.append(postgres.stop(env))
    return done


def is_up(env: Environment) -> bool:
    p = paths(env)
    return supervisor.running(p) and (env.database.url is not None or postgres.running(p))

"""The local stack's external API and authentication service (`local.api`, `local.auth`): the demo's
`demo/services/` WSGI apps under gunicorn, on 127.0.0.1, one supervisord program each.

The auth service's account and shared secret go to a 0600 dotenv file under the state folder that the
service reads on every request; its command line names only that file.
"""

import os
from pathlib import Path

from runbook import ROOT, envfile
from runbook.config import Environment
from runbook.local.paths import Paths
from runbook.local.stack import Part
from runbook.local.supervisor import Program, venv_bin
from runbook.secrets import expand

SERVICES = ROOT / "demo" / "services"


def gunicorn(port: int, module: str, env: dict[str, str] | None = None) -> str:
    """The supervisord command of one service: gunicorn serving `module` on 127.0.0.1:`port`."""
    options = "".join(f" --env {key}={value}" for key, value in (env or {}).items())
    return (f"{venv_bin() / 'gunicorn'} --chdir {SERVICES} --bind 127.0.0.1:{port} --workers 1 --timeout 30"
            f" --no-control-socket{options} {module}:application")


def auth_config(p: Paths) -> Path:
    return p.state / "auth" / "auth.env"


class Services(Part):
    """The external API and the authentication service the environment's `local:` section configures."""

    def prepare(self, env: Environment, p: Paths) -> list[str]:
        auth = env.local.auth
        if auth is None:
            return []
        text = envfile.render({"AUTH_USERNAME": auth.username, "AUTH_PASSWORD": expand(auth.password),
                               "AUTH_SECRET": expand(auth.secret)})
        path = auth_config(p)
        if path.exists() and path.read_text() == text:
            return []
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        path.chmod(0o600)
        return [f"wrote the authentication service's account and shared secret to {path}"]

    def programs(self, env: Environment, p: Paths) -> list[Program]:
        found = []
        if env.local.api is not None:
            found.append(Program("external-api", gunicorn(env.local.api.port, "extapi"), SERVICES,
                                 listens=("127.0.0.1", env.local.api.port)))
        if env.local.auth is not None:
            command = gunicorn(env.local.auth.port, "auth", {"AUTH_CONFIG": str(auth_config(p).resolve())})
            found.append(Program("auth-service", command, SERVICES, listens=("127.0.0.1", env.local.auth.port)))
        return found

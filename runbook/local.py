"""The embedded local environment: a private PostgreSQL cluster, a supervisord and the app's folders,
all under the environment's state folder (`.local/` by default, gitignored).

`up` starts what is not running and leaves alone what is, so a second `up` changes nothing;
`down` stops what `up` started.
"""

import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe

import jinja2
import psycopg
from psycopg import sql

from runbook.record import signing
from runbook.config import Environment
from runbook.errors import ConfigError, RunbookError
from runbook.secrets import references, secret_file

SUPERVISORD_CONF = jinja2.Template(
    """\
; written by runbook for the local environment {{ env.name }}; changes are overwritten
[unix_http_server]
file={{ sup }}/supervisor.sock
chmod=0700

[supervisord]
logfile={{ sup }}/supervisord.log
pidfile={{ sup }}/supervisord.pid
childlogdir={{ sup }}/logs
directory={{ state }}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{{ sup }}/supervisor.sock
{% for service in services %}
[program:{{ service.name }}]
command={{ service.command }}
directory={{ current }}
autostart=false
autorestart=true
startsecs=2
stopwaitsecs=15
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={{ sup }}/logs/{{ service.name }}.log
{% endfor %}
""",
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Paths:
    """Where the local environment keeps its state."""

    state: Path

    @property
    def pgdata(self) -> Path:
        return self.state / "postgres" / "data"

    @property
    def pgsocket(self) -> Path:
        return self.state / "postgres" / "socket"

    @property
    def pglog(self) -> Path:
        return self.state / "postgres" / "postgres.log"

    @property
    def supervisor(self) -> Path:
        return self.state / "supervisor"

    @property
    def supervisord_conf(self) -> Path:
        return self.supervisor / "supervisord.conf"


def paths(env: Environment) -> Paths:
    if env.local is None:
        raise ConfigError(f"{env.source}: environment {env.name!r} is not a local environment (no `local:` section)")
    return Paths(env.local.state_dir)


def _bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else the newest in Debian's /usr/lib/postgresql/*/bin."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    found = shutil.which(name) or (candidates[-1] if candidates else None)
    if not found:
        raise RunbookError(f"{name} not found: install the PostgreSQL server package (e.g. postgresql-15)")
    return found


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str, timeout: float = 120) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"{what}: no answer within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise RunbookError(f"{what} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _postgres_running(p: Paths) -> bool:
    if not (p.pgdata / "PG_VERSION").exists():
        return False
    argv = _as_postgres([_bin("pg_ctl"), "status", "-D", str(p.pgdata)])
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        raise RunbookError(f"pg_ctl status -D {p.pgdata}: no answer within 30 s") from None


def _postgres_up(env: Environment, p: Paths) -> list[str]:
    done = []
    if not (p.pgdata / "PG_VERSION").exists():
        p.pgdata.mkdir(parents=True, exist_ok=True)
        p.pgsocket.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(p.pgdata.parent, "postgres", "postgres")
            for sub in (p.pgdata, p.pgsocket):
                shutil.chown(sub, "postgres", "postgres")
        p.pgdata.chmod(0o700)
        _run(_as_postgres([_bin("initdb"), "-D", str(p.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]), "initdb")
        done.append(f"created PostgreSQL cluster in {p.pgdata}")
    if not _postgres_running(p):
        options = f"-p {env.local.postgres_port} -k {p.pgsocket} -c listen_addresses=127.0.0.1"
        _run(
            _as_postgres([_bin("pg_ctl"), "start", "-D", str(p.pgdata), "-l", str(p.pglog), "-w", "-t", "60", "-o", options]),
            f"starting PostgreSQL on port {env.local.postgres_port} (log: {p.pglog})",
        )
        done.append(f"started PostgreSQL on 127.0.0.1:{env.local.postgres_port}")
    admin = f"postgresql://postgres@127.0.0.1:{env.local.postgres_port}/postgres"
    with psycopg.connect(admin, connect_timeout=10, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (env.app.name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(env.app.name)))
            done.append(f"created database {env.app.name}")
    return done


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def supervisorctl(p: Paths, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [str(_venv_bin() / "supervisorctl"), "-c", str(p.supervisord_conf), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def _supervisord_running(p: Paths) -> bool:
    return p.supervisord_conf.exists() and supervisorctl(p, "pid").stdout.strip().isdigit()


def _supervisor_up(env: Environment, p: Paths) -> list[str]:
    (p.supervisor / "logs").mkdir(parents=True, exist_ok=True)
    services = [
        {"name": s.name, "command": jinja2.Template(s.command, undefined=jinja2.StrictUndefined).render(
            current=env.app.current, bin=_venv_bin(), root=env.app.root)}
        for s in env.services if s.manager == "supervisord"
    ]
    text = SUPERVISORD_CONF.render(env=env, sup=p.supervisor, state=p.state, services=services, current=env.app.current)
    changed = not p.supervisord_conf.exists() or p.supervisord_conf.read_text() != text
    if changed:
        p.supervisord_conf.write_text(text)
        p.supervisord_conf.chmod(0o600)
    if not _supervisord_running(p):
        _run([str(_venv_bin() / "supervisord"), "-c", str(p.supervisord_conf)], "starting supervisord")
        for _ in range(100):
            if _supervisord_running(p):
                return ["started supervisord"]
            time.sleep(0.1)
        raise RunbookError(f"supervisord did not come up (log: {p.supervisor / 'supervisord.log'})")
    if changed:
        supervisorctl(p, "update")
        return ["updated supervisord's programs"]
    return []


def _secrets(env: Environment, p: Paths) -> list[str]:
    """Generate each secret file the environment references inside the state folder, once:
    a `.pem` file as an Ed25519 signing key, any other as a random token."""
    done = []
    for _, template in env.secret_values():
        for ref in references(template):
            path = secret_file(ref) if ref.startswith("file:") else None
            if path and path.resolve().is_relative_to(p.state.resolve()) and not path.exists():
                path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
                if path.suffix == ".pem":
                    signing.generate_key(path)
                else:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as out:
                        out.write(token_urlsafe(32))
                done.append(f"generated secret {path}")
    return done


def _layout(env: Environment) -> list[str]:
    done = []
    for folder, mode in ((env.app.releases, 0o755), (env.app.shared, 0o750), (env.database.backup_dir, 0o700)):
        if not folder.exists():
            folder.mkdir(parents=True, mode=mode)
            folder.chmod(mode)
            done.append(f"created {folder}")
    return done


def up(env: Environment, programs: bool = True) -> list[str]:
    """Start what is not running (the app's programs too, with `programs`); the list says what was
    done (empty when all was up)."""
    p = paths(env)
    p.state.mkdir(parents=True, exist_ok=True)
    done = _layout(env) + _secrets(env, p)
    if env.database.url is None:
        done += _postgres_up(env, p)
    done += _supervisor_up(env, p)
    return done + (start_programs(env) if programs else [])


def start_programs(env: Environment) -> list[str]:
    """Start the app's stopped programs on the current release, when there is one."""
    p = paths(env)
    if env.app.current.exists() and any("STOPPED" in line or "EXITED" in line
                                        for line in supervisorctl(p, "status").stdout.splitlines()):
        supervisorctl(p, "start", "all")
        return [f"started the app's services on the current release ({env.app.current.resolve().name})"]
    return []


def down(env: Environment) -> list[str]:
    """Stop supervisord (and with it the app) and the private PostgreSQL cluster."""
    p = paths(env)
    done = []
    if _supervisord_running(p):
        supervisorctl(p, "shutdown")
        done.append("stopped supervisord and its programs")
    if env.database.url is None and _postgres_running(p):
        done.append(stop_postgres(env))
    return done


def stop_postgres(env: Environment) -> str:
    """Stop the private PostgreSQL cluster (fast shutdown: sessions are ended, nothing is lost)."""
    _run(_as_postgres([_bin("pg_ctl"), "stop", "-D", str(paths(env).pgdata), "-m", "fast", "-w", "-t", "60"]),
         "stopping PostgreSQL")
    return "stopped PostgreSQL"


def is_up(env: Environment) -> bool:
    p = paths(env)
    return _supervisord_running(p) and (env.database.url is not None or _postgres_running(p))

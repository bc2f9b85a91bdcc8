"""The local environment's private PostgreSQL cluster."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from runbook.config import Environment
from runbook.errors import RunbookError
from runbook.local.paths import Paths, paths, run


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


def running(p: Paths) -> bool:
    if not (p.pgdata / "PG_VERSION").exists():
        return False
    argv = _as_postgres([_bin("pg_ctl"), "status", "-D", str(p.pgdata)])
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        raise RunbookError(f"pg_ctl status -D {p.pgdata}: no answer within 30 s") from None


def _ours(env: Environment, p: Paths) -> psycopg.Connection | None:
    """A connection to the cluster on the environment's port, when it answers and is this environment's
    own (its data folder); None when nothing answers there. The one check `up` makes when all is up."""
    try:
        conn = psycopg.connect(_admin(env), connect_timeout=10, autocommit=True)
    except psycopg.OperationalError:
        return None
    serving = conn.execute("SHOW data_directory").fetchone()[0]
    if Path(serving).resolve() != p.pgdata.resolve():
        conn.close()
        raise RunbookError(f"port {env.local.postgres_port} is served by another PostgreSQL cluster ({serving}), "
                           f"not this environment's ({p.pgdata}): give `local.postgres_port` a free port")
    return conn


def _admin(env: Environment) -> str:
    return f"postgresql://postgres@127.0.0.1:{env.local.postgres_port}/postgres"


def up(env: Environment, p: Paths) -> list[str]:
    done = []
    conn = _ours(env, p) if (p.pgdata / "PG_VERSION").exists() else None
    if conn is None:
        done += _start(env, p)
        conn = psycopg.connect(_admin(env), connect_timeout=10, autocommit=True)
    with conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (env.app.name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(env.app.name)))
            done.append(f"created database {env.app.name}")
    return done


def _start(env: Environment, p: Paths) -> list[str]:
    """Create the cluster when there is none and start it when it is not running."""
    done = []
    if not (p.pgdata / "PG_VERSION").exists():
        p.pgdata.mkdir(parents=True, exist_ok=True)
        p.pgsocket.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(p.pgdata.parent, "postgres", "postgres")
            for sub in (p.pgdata, p.pgsocket):
                shutil.chown(sub, "postgres", "postgres")
        p.pgdata.chmod(0o700)
        run(_as_postgres([_bin("initdb"), "-D", str(p.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]), "initdb")
        done.append(f"created PostgreSQL cluster in {p.pgdata}")
    if not running(p):
        options = f"-p {env.local.postgres_port} -k {p.pgsocket} -c listen_addresses=127.0.0.1"
        run(
            _as_postgres([_bin("pg_ctl"), "start", "-D", str(p.pgdata), "-l", str(p.pglog), "-w", "-t", "60", "-o", options]),
            f"starting PostgreSQL on port {env.local.postgres_port} (log: {p.pglog})",
        )
        done.append(f"started PostgreSQL on 127.0.0.1:{env.local.postgres_port}")
    return done


def stop(env: Environment) -> str:
    """Stop the private PostgreSQL cluster (fast shutdown: sessions are ended, nothing is lost)."""
    run(_as_postgres([_bin("pg_ctl"), "stop", "-D", str(paths(env).pgdata), "-m", "fast", "-w", "-t", "60"]),
        "stopping PostgreSQL")
    return "stopped PostgreSQL"

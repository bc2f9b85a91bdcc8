"""How the PostgreSQL clients (pg_dump, pg_restore) on the backup host log in: a conninfo without the
password, and a password file written for one command and removed after it."""

import contextlib
import uuid
from typing import Iterator

import psycopg

from runbook.config import Environment
from runbook.database import queries
from runbook.hosts import commands as host_commands
from runbook.hosts import connection, runner


@contextlib.contextmanager
def login(env: Environment, dbname: str | None = None) -> Iterator[tuple[str, str | None]]:
    """The conninfo for the PostgreSQL clients without its password (of the database `dbname` of the same
    server when given), and the password file that holds it (None without a password)."""
    info = psycopg.conninfo.conninfo_to_dict(queries.url(env))
    password = info.pop("password", None)
    conninfo = psycopg.conninfo.make_conninfo(**(info | ({"dbname": dbname} if dbname else {})))
    if not password:
        yield conninfo, None
        return
    host, path = env.backup_host, str(env.database.backup_dir / f".pgpass-runbook-{uuid.uuid4().hex}")
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    connection.put(host, path, f"*:*:*:*:{escaped}\n".encode(), 0o600)
    try:
        yield conninfo, path
    finally:
        runner.must(host, host_commands.remove_files(path), what=f"removing the password file {path}")

"""The environment's PostgreSQL database: connection, versions, size, applied migrations."""

import contextlib
import re
from typing import Iterator

import psycopg
from psycopg import errors

from runbook.config import Environment
from runbook.database import commands
from runbook.errors import CheckFailed, DeadlineExceeded
from runbook.findings import Finding
from runbook.hosts import runner, survey
from runbook.secrets import expand, redact


LSN = "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text"
"""The server's WAL position (LSN): where a point-in-time recovery may stop."""


def url(env: Environment) -> str:
    """The database URL with secrets resolved (its password known to the redactor); the local cluster's
    when none is configured."""
    if env.database.url is not None:
        resolved = expand(env.database.url)
        redact.register_url(resolved)
        return resolved
    return f"postgresql://postgres@127.0.0.1:{env.local.postgres_port}/{env.app.name}"


@contextlib.contextmanager
def connect(env: Environment, dbname: str | None = None) -> Iterator[psycopg.Connection]:
    """A session whose statements end after `deadlines.statement` and whose waits for a lock another
    session holds end after `deadlines.lock`, each then a `DeadlineExceeded` naming the deadline.
    `dbname`: another database of the same server (a restore drill's scratch copy)."""
    limits = env.deadlines
    options = commands.session_options(limits.statement, limits.lock)
    chosen = {"dbname": dbname} if dbname else {}
    try:
        conn = psycopg.connect(url(env), connect_timeout=env.database.connect_timeout, autocommit=True,
                               options=options, **chosen)
    except psycopg.OperationalError as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CheckFailed(f"database {endpoint(env)} does not answer: {reason}") from None
    with conn:
        try:
            yield conn
        except errors.LockNotAvailable:
            raise DeadlineExceeded(f"database {endpoint(env)}: a statement waited {limits.lock} s for a lock another "
                                   "session holds (deadline lock); it was given up") from None
        except errors.QueryCanceled as e:
            if "statement timeout" not in str(e):  # cancelled by someone, not by the deadline
                raise
            raise DeadlineExceeded(f"database {endpoint(env)}: a statement did not finish within {limits.statement} s "
                                   "(deadline statement); it was cancelled") from None


def endpoint(env: Environment) -> str:
    """`host:port/name` of the database, for messages (never the password)."""
    info = psycopg.conninfo.conninfo_to_dict(url(env))
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def address(env: Environment) -> tuple[str, int]:
    info = psycopg.conninfo.conninfo_to_dict(url(env))
    return info.get("host", "localhost"), int(info.get("port", 5432))


def select_one(env: Environment) -> str:
    with connect(env) as conn:
        value = conn.execute("SELECT 1").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]
    return f"SELECT 1 returned {value} from PostgreSQL {version} at {endpoint(env)}"


def server_major(env: Environment) -> int:
    with connect(env) as conn:
        return conn.info.server_version // 10000


def size_bytes(env: Environment) -> int:
    with connect(env) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def applied_versions(env: Environment) -> set[str]:
    """Versions the database has applied; none when the migrations table does not exist yet."""
    return set(query_column(env, env.app.migrations.applied_query))


def client_major(version_output: str) -> int:
    """The major version in `pg_dump --version` output, e.g. 15 from "pg_dump (PostgreSQL) 15.19"."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_output)
    if not match:
        raise CheckFailed(f"cannot read a version from {version_output.strip()!r}")
    return int(match.group(1))


def pg_dump_compatible(env: Environment) -> Finding:
    """pg_dump on the backup host must be at least the server's major version to dump it."""
    host = env.backup_host
    result = runner.run(host, commands.version(env.database.pg_dump))
    subject = f"host {host.name}"
    if result.rc != 0:
        return Finding(subject, False, f"{env.database.pg_dump} --version failed: {(result.stderr or result.stdout).strip()}")
    client, server = client_major(result.stdout), server_major(env)
    detail = f"pg_dump {client} against PostgreSQL server {server}"
    return Finding(subject, client >= server, detail + (" (client is older than the server)" if client < server else ""))


def backup_room(env: Environment) -> Finding:
    """The backup folder on the backup host accepts a file and has room for a dump of the database."""
    host, folder = env.backup_host, str(env.database.backup_dir)
    subject = f"host {host.name}"
    reason = survey.writable(host, folder)
    if reason is not None:
        return Finding(subject, False, f"backup folder {folder} is not writable: {reason}")
    needed, free = size_bytes(env), survey.free_kb(host, folder) * 1024
    detail = f"backup folder {folder} has {free // 2**20} MB free for a database of {needed // 2**20} MB"
    return Finding(subject, free >= needed, detail + ("" if free >= needed else " (not enough room)"))


def may_create_databases(env: Environment) -> Finding:
    """The runbook's login may create (and so drop) the restore drill's scratch database."""
    with connect(env) as conn:
        user, allowed = conn.execute("SELECT current_user, rolcreatedb OR rolsuper FROM pg_roles "
                                     "WHERE rolname = current_user").fetchone()
    detail = f"role {user} {'may' if allowed else 'may not'} create databases"
    return Finding(f"database {endpoint(env)}", allowed,
                   detail + ("" if allowed else " (the restore drill needs CREATEDB: ALTER ROLE ... CREATEDB)"))


def query_column(env: Environment, query: str) -> list[str]:
    """The first column of a query's rows, as text (empty when the table does not exist yet)."""
    with connect(env) as conn:
        try:
            return [str(row[0]) for row in conn.execute(query)]
        except errors.UndefinedTable:
            return []


def schema_version(env: Environment) -> str | None:
    """The newest applied migration version; None before the first migration."""
    applied = applied_versions(env)
    return max(applied, key=int) if applied else None


def wal_position_or_why(env: Environment) -> str:
    """The WAL position now, or why it cannot be read (it is recorded, never a reason to stop)."""
    try:
        with connect(env) as conn:
            return conn.execute(LSN).fetchone()[0]
    except Exception as e:  # psycopg's errors, a database that does not answer
        return f"unknown ({type(e).__name__}: {e})"


def schema_version_or_why(env: Environment) -> str | None:
    """The schema version, or why it cannot be read: for reports of the state, where a database that
    is down is part of the answer, not a reason to stop."""
    try:
        return schema_version(env)
    except Exception as e:  # psycopg's errors, a host that does not answer
        return f"unknown ({type(e).__name__}: {e})"

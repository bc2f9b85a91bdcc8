"""Database backups (runbook Step 3), taken on the backup host with pg_dump in custom format (directory
format with parallel jobs when configured), verified with `pg_restore --list` against every table.

A backup's path is recorded when it is taken; a restore reads it from the record, never from the clock.
"""

import re
from dataclasses import asdict, dataclass

import psycopg
from psycopg import sql

from runbook.database import queries
from runbook.hosts import connection
from runbook.config import Environment
from runbook.errors import ActionFailed

DIGEST = r"""
if [ -d "$1" ]; then
  size=$(du -sb -- "$1" | cut -f1)
  sum=$(cd -- "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
else
  size=$(stat -c %s -- "$1"); sum=$(sha256sum -- "$1" | cut -d' ' -f1)
fi
echo "$size $sum"
"""


@dataclass(frozen=True)
class Backup:
    path: str
    format: str
    size_bytes: int
    sha256: str
    tables: list[str]
    """Every table of the database when it was taken; each is in the dump's table of contents."""
    host: str

    def as_record(self) -> dict:
        return asdict(self)


def tables(env: Environment) -> list[str]:
    """Every ordinary table outside the system schemas, as `schema.table`."""
    with queries.connect(env) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _tool(env: Environment, *argv: str, what: str, database_arg: bool = True) -> str:
    """Run a PostgreSQL client on the backup host; the password goes in its environment, not in a message."""
    info = psycopg.conninfo.conninfo_to_dict(queries.url(env))
    password = info.pop("password", None)
    prefix = [f"PGPASSWORD={password}"] if password else []
    target = [f"--dbname={psycopg.conninfo.make_conninfo(**info)}"] if database_arg else []
    return connection.must(env.backup_host, 'exec env "$@"', *prefix, *argv, *target, what=what)


def listed_tables(env: Environment, path: str) -> set[str]:
    """Tables whose data the dump holds, from `pg_restore --list`."""
    toc = _tool(env, env.database.pg_restore, "--list", path, what=f"listing backup {path}", database_arg=False)
    return {f"{m.group(1)}.{m.group(2)}" for m in re.finditer(r"TABLE DATA (\S+) (\S+) ", toc)}


def take(env: Environment, label: str) -> Backup:
    """Dump the database into the backup folder as `<label>.dump` (or `.dir`), verify it, measure it."""
    jobs = env.database.dump_jobs
    fmt, suffix = ("directory", "dir") if jobs > 1 else ("custom", "dump")
    path = str(env.database.backup_dir / f"{label}.{suffix}")
    expected = tables(env)
    options = ["--format=directory", f"--jobs={jobs}"] if jobs > 1 else ["--format=custom"]
    _tool(env, env.database.pg_dump, *options, f"--file={path}", what=f"pg_dump into {path}")
    missing = sorted(set(expected) - listed_tables(env, path))
    if missing:
        raise ActionFailed(f"backup {path} does not list these tables: {', '.join(missing)}")
    size, digest = connection.must(env.backup_host, DIGEST, path, what=f"measuring backup {path}").split()
    return Backup(path, fmt, int(size), digest, expected, env.backup_host.name)


def restore(env: Environment, backup: dict) -> None:
    """Put the database back as the backup has it: tables created since are dropped, the rest restored."""
    extra = sorted(set(tables(env)) - set(backup["tables"]))
    with queries.connect(env) as conn:
        for name in extra:
            schema, table = name.split(".", 1)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(sql.Identifier(schema), sql.Identifier(table)))
    jobs = ["--jobs=" + str(env.database.dump_jobs)] if backup["format"] == "directory" else ["--single-transaction"]
    _tool(env, env.database.pg_restore, "--clean", "--if-exists", "--no-owner", *jobs, backup["path"],
          what=f"restoring backup {backup['path']}")

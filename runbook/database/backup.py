"""Database backups (runbook Step 3), taken on the backup host with pg_dump in custom format (directory
format with parallel jobs when configured), verified with `pg_restore --list` against every table and by a
restore drill (`runbook.database.drill`).

A backup's path is recorded when it is taken; a restore reads it from the record, never from the clock.
"""

import contextlib
import re
from dataclasses import asdict, dataclass
from typing import Iterator

from psycopg import sql

from runbook import console
from runbook.config import Environment
from runbook.database import commands, drill, queries
from runbook.database.drill import Drill
from runbook.database.migrations import Migration
from runbook.database.login import login
from runbook.errors import ActionFailed
from runbook.hosts import commands as host_commands
from runbook.hosts import runner
from runbook.times import stamp, utc_now


@dataclass(frozen=True)
class Backup:
    path: str
    format: str
    size_bytes: int
    sha256: str
    tables: list[str]
    """Every table of the database when it was taken; each is in the dump's table of contents."""
    host: str
    taken: str
    """When the dump's snapshot was taken (UTC)."""
    lsn: str
    """The WAL position at the dump's snapshot."""
    activity: dict[str, dict[str, int]]
    """Each table's rows inserted, updated and deleted (server statistics) at the dump: a rollback that
    restores the backup states the writes since from their growth."""
    drill: Drill
    """The restore drill that verified it."""

    def as_record(self) -> dict:
        return asdict(self)


def tables(env: Environment) -> list[str]:
    """Every ordinary table outside the system schemas, as `schema.table`."""
    with queries.connect(env) as conn:
        rows = conn.execute(drill.TABLES).fetchall()
    return [r[0] for r in rows]


def listed_tables(env: Environment, path: str) -> set[str]:
    """Tables whose data the dump holds, from `pg_restore --list`."""
    toc = runner.must(env.backup_host, commands.table_of_contents(env.database.pg_restore, path),
                      what=f"listing backup {path}", kind="backup")
    return {f"{m.group(1)}.{m.group(2)}" for m in re.finditer(r"TABLE DATA (\S+) (\S+) ", toc)}


@dataclass(frozen=True)
class Dumped:
    """A dump whose table of contents lists every table, measured; not yet drilled."""

    source: drill.Source
    size_bytes: int
    sha256: str
    taken: str


def take(env: Environment, label: str, run_id: str, pending: list[Migration] | None = None) -> Backup:
    """Dump the database into the backup folder as `<label>.dump` (or `.dir`), verify it by a restore drill
    (rehearsing the `pending` migrations on the copy), measure it."""
    jobs = env.database.dump_jobs
    fmt, suffix = ("directory", "dir") if jobs > 1 else ("custom", "dump")
    path = str(env.database.backup_dir / f"{label}.{suffix}")
    with _removed_unless_verified(env, path):
        dumped = dump(env, path)
        seen = dumped.source
        drilled = drill.run(env, path, fmt == "directory", seen, run_id, pending)
    return Backup(path, fmt, dumped.size_bytes, dumped.sha256, seen.tables, env.backup_host.name, dumped.taken,
                  seen.lsn, seen.activity, drilled)


def dump(env: Environment, path: str) -> Dumped:
    """pg_dump into `path` in a snapshot whose figures are taken alongside; checked to list every table and
    measured (a caller removes it on failure)."""
    with drill.source(env) as seen:
        taken = stamp(utc_now())
        with login(env) as (dbname, password_file):
            argv = commands.dump(env.database.pg_dump, path, env.database.dump_jobs, dbname, password_file,
                                 env.deadlines.lock, seen.snapshot)
            with console.current().counting(lambda: _written(env, path), every=1.0):
                runner.must(env.backup_host, argv, what=f"pg_dump into {path}", kind="backup")
    missing = sorted(set(seen.tables) - listed_tables(env, path))
    if missing:
        raise ActionFailed(f"backup {path} does not list these tables: {', '.join(missing)}")
    size, digest = runner.must(env.backup_host, commands.measure(path), what=f"measuring backup {path}",
                               kind="backup").split()
    return Dumped(seen, int(size), digest, taken)


def _written(env: Environment, path: str) -> str | None:
    """How much of the dump pg_dump has written so far, for the live line; None before it has begun."""
    found = runner.run(env.backup_host, commands.size(path))
    return f"{int(found.stdout.split()[0]):,} bytes written" if found.rc == 0 else None


@contextlib.contextmanager
def _removed_unless_verified(env: Environment, path: str) -> Iterator[None]:
    """A dump that failed, or failed its verification, is removed from the backup host (a partial one on a
    full disk would keep it full); the error says whether it was."""
    try:
        yield
    except BaseException as e:
        left = _remove(env, path)
        if isinstance(e, ActionFailed):
            raise ActionFailed(f"{e}; the partial backup {path} was {left}", e.exit_code) from None
        raise


def _remove(env: Environment, path: str) -> str:
    try:
        result = runner.run(env.backup_host, host_commands.remove_trees(path))
    except Exception as e:  # the host is not answering: the first error is the one to tell
        return f"NOT removed ({type(e).__name__}: {e})"
    return "removed" if result.rc == 0 else f"NOT removed ({result.stderr.strip() or f'exit {result.rc}'})"


def restore(env: Environment, backup: dict) -> None:
    """Put the database back as the backup has it: tables created since are dropped, the rest restored."""
    extra = sorted(set(tables(env)) - set(backup["tables"]))
    with queries.connect(env) as conn:
        for name in extra:
            schema, table = name.split(".", 1)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(sql.Identifier(schema), sql.Identifier(table)))
    with login(env) as (dbname, password_file):
        argv = commands.restore(env.database.pg_restore, backup["path"], backup["format"] == "directory",
                                env.database.dump_jobs, dbname, password_file)
        runner.must(env.backup_host, argv, what=f"restoring backup {backup['path']}", kind="backup")

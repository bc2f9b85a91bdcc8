"""Step 3's "test migration scripts": on the restore drill's copy, each pending migration runs up, then down,
then up again, with the `migrate` deadline per statement and `lock_timeout`: a part that fails, a down
part that does not return the schema to what it was (`pg_dump --schema-only` before and after,
without comments and settings), or an up part that is not repeatable after its down stops the deploy
before anything of the environment changed. Opt-in: `database.drill.rehearse: true`.
"""

import difflib
import time
from dataclasses import dataclass

import psycopg

from runbook.config import Environment
from runbook.database import commands, queries
from runbook.database.login import login
from runbook.database.migrations import Migration
from runbook.errors import ActionFailed
from runbook.hosts import runner


@dataclass(frozen=True)
class Rehearsed:
    migration: str
    up_seconds: float
    """How long its up part took on the copy."""
    down_seconds: float


def schema(env: Environment, database: str) -> list[str]:
    """The database's schema as `pg_dump --schema-only` writes it, without comments, settings, blank lines and
    the random keys of `\\restrict` (newer pg_dump)."""
    with login(env, database) as (conninfo, password_file):
        argv = commands.schema_dump(env.database.pg_dump, conninfo, password_file)
        text = runner.must(env.backup_host, argv, what=f"pg_dump --schema-only of {database}", kind="backup")
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict",
                                                     "\\unrestrict"))]


def _part(conn: psycopg.Connection, migration: Migration, part: str, label: str) -> float:
    started = time.monotonic()
    try:
        with conn.transaction():
            conn.execute(getattr(migration, part))
    except psycopg.errors.LockNotAvailable as e:
        raise ActionFailed(f"rehearsal of {migration.label}: {label} waited longer than lock_timeout for a lock: "
                           f"{str(e).strip()}") from None
    except psycopg.Error as e:
        raise ActionFailed(f"rehearsal of {migration.label}: {label} failed on the copy: {str(e).strip()}") from None
    return round(time.monotonic() - started, 3)


def run(env: Environment, database: str, pending: list[Migration]) -> list[Rehearsed]:
    """Rehearse `pending` (in order) on the copy `database`; `ActionFailed` naming the first that fails."""
    done = []
    with queries.connect(env, dbname=database) as conn:
        conn.execute(f"SET statement_timeout = '{env.deadlines.migrate}s'")
        for migration in pending:
            if not migration.transactional:
                raise ActionFailed(f"rehearsal of {migration.label}: it is declared transaction:false, which the "
                                   "rehearsal cannot undo on failure; turn `database.drill.rehearse` off to deploy it")
            before = schema(env, database)
            up = _part(conn, migration, "up", "its up part")
            down = _part(conn, migration, "down", "its down part")
            after = schema(env, database)
            if after != before:
                diff = "\n".join(list(difflib.unified_diff(before, after, "before up", "after down", lineterm=""))[:40])
                raise ActionFailed(f"rehearsal of {migration.label}: its down part does not return the schema to "
                                   f"what it was before its up part:\n{diff}")
            _part(conn, migration, "up", "its up part, run again after its down part")
            done.append(Rehearsed(migration.label, up, down))
    return done

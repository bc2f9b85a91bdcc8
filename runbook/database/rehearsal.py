"""Step 3's "test migration scripts": on the restore drill's copy, each pending migration runs up, then down,
then up again, with the `migrate` deadline per statement and `lock_timeout`: a part that fails, a down
part that does not return the schema to what it was (`pg_dump --schema-only` before and after,
without comments and settings), or an up part that is not repeatable after its down stops the deploy
before anything of the environment changed. Each up part's locks (the strongest mode on each table, read
from `pg_locks` inside its transaction just before it commits, so exact) and rows touched
(`pg_stat_xact_user_tables`) are recorded; under `rollout.strategy: rolling` one that takes ACCESS
EXCLUSIVE on a table above `database.drill.exclusive_lock_max_mb` is refused. A part kept waiting longer
than `lock_timeout` names the locks other sessions hold on the copy. On unless `database.drill.rehearse: false`.
"""

import difflib
import time
from dataclasses import dataclass, field

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
    locks: dict[str, str] = field(default_factory=dict)
    """Each table its up part locked, with the strongest mode it held (`AccessExclusiveLock`, ...)."""
    rows: dict[str, int] = field(default_factory=dict)
    """Each table's rows its up part inserted, updated or deleted."""
    sizes: dict[str, int] = field(default_factory=dict)
    """The size in bytes (with indexes and TOAST) on the copy, before its up part, of each table it locked and
    did not create."""


MODES = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]
"""PostgreSQL's table lock modes, weakest first."""

HELD = """SELECT n.nspname || '.' || c.relname, l.mode
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"""

SIZES = """SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'"""

TOUCHED = """SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0"""

OTHERS = """SELECT n.nspname || '.' || c.relname, l.mode, l.pid, a.state, a.xact_start
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.granted
  AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 3"""


@dataclass(frozen=True)
class Observed:
    seconds: float
    locks: dict[str, str]
    rows: dict[str, int]
    sizes: dict[str, int]


def strongest(held: list[tuple[str, str]]) -> dict[str, str]:
    """Each table of `held` (table, mode) with the strongest mode held on it, by the table's name."""
    out: dict[str, str] = {}
    for table, mode in held:
        if table not in out or MODES.index(mode) > MODES.index(out[table]):
            out[table] = mode
    return dict(sorted(out.items()))


def blockers(conn: psycopg.Connection) -> str:
    """The table locks other sessions hold on the copy, said plainly."""
    rows = conn.execute(OTHERS).fetchall()
    return "; ".join(f"{mode} on {table} held by session {pid} ({state or 'state unknown'}, its transaction began "
                     f"{start:%H:%M:%S})" if start else f"{mode} on {table} held by session {pid}"
                     for table, mode, pid, state, start in rows) or "none is held now"


def schema(env: Environment, database: str) -> list[str]:
    """The database's schema as `pg_dump --schema-only` writes it, without comments, settings, blank lines and
    the random keys of `\\restrict` (newer pg_dump)."""
    with login(env, database) as (conninfo, password_file):
        argv = commands.schema_dump(env.database.pg_dump, conninfo, password_file)
        text = runner.must(env.backup_host, argv, what=f"pg_dump --schema-only of {database}", kind="backup")
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict",
                                                     "\\unrestrict"))]


def _part(conn: psycopg.Connection, migration: Migration, part: str, label: str, lock: float) -> Observed:
    """Run one part in a transaction; what it locked and touched is read inside it, before it commits; the
    sizes of the tables it locked are theirs before it (a table it creates has none)."""
    existing = dict(conn.execute(SIZES).fetchall())
    started = time.monotonic()
    try:
        with conn.transaction():
            conn.execute(getattr(migration, part))
            seconds = round(time.monotonic() - started, 3)
            held = conn.execute(HELD).fetchall()
            rows = dict(sorted(conn.execute(TOUCHED).fetchall()))
    except psycopg.errors.LockNotAvailable:
        raise ActionFailed(f"rehearsal of {migration.label}: {label} waited longer than lock_timeout ({lock:g} s) "
                           f"for a lock another session holds on the copy: {blockers(conn)}") from None
    except psycopg.Error as e:
        raise ActionFailed(f"rehearsal of {migration.label}: {label} failed on the copy: {str(e).strip()}") from None
    locks = strongest(held)
    return Observed(seconds, locks, rows, {t: existing[t] for t in locks if t in existing})


def refusal(env: Environment, migration: str, observed: Observed) -> str | None:
    """Why a rolling deploy may not run this migration: ACCESS EXCLUSIVE on a table above the size allowed."""
    limit = env.database.drill.exclusive_lock_max_mb
    if env.rollout.strategy != "rolling":
        return None
    big = [(t, observed.sizes.get(t, 0)) for t, mode in observed.locks.items()
           if mode == "AccessExclusiveLock" and observed.sizes.get(t, 0) > limit * 2**20]
    if not big:
        return None
    return (f"rehearsal of {migration}: under rollout.strategy rolling it may not take AccessExclusiveLock on "
            + ", ".join(f"{t} ({size / 2**20:.2f} MB)" for t, size in big)
            + f", above database.drill.exclusive_lock_max_mb ({limit} MB): the serving release would stall on "
            "that table while it runs; make the change in steps that take weaker locks, or deploy it with "
            "rollout.strategy maintenance")


def run(env: Environment, database: str, pending: list[Migration]) -> list[Rehearsed]:
    """Rehearse `pending` (in order) on the copy `database`; `ActionFailed` naming the first that fails."""
    done = []
    with queries.connect(env, dbname=database) as conn:
        conn.execute(f"SET statement_timeout = '{env.deadlines.migrate}s'")
        lock = env.deadlines.lock
        for migration in pending:
            if not migration.transactional:
                raise ActionFailed(f"rehearsal of {migration.label}: it is declared transaction:false, which the "
                                   "rehearsal cannot undo on failure; turn `database.drill.rehearse` off to deploy it")
            before = schema(env, database)
            up = _part(conn, migration, "up", "its up part", lock)
            refused = refusal(env, migration.label, up)
            if refused:
                raise ActionFailed(refused)
            down = _part(conn, migration, "down", "its down part", lock)
            after = schema(env, database)
            if after != before:
                diff = "\n".join(list(difflib.unified_diff(before, after, "before up", "after down", lineterm=""))[:40])
                raise ActionFailed(f"rehearsal of {migration.label}: its down part does not return the schema to "
                                   f"what it was before its up part:\n{diff}")
            _part(conn, migration, "up", "its up part, run again after its down part", lock)
            done.append(Rehearsed(migration.label, up.seconds, down.seconds, up.locks, up.rows, up.sizes))
    return done

"""Step 3's restore drill: a backup is restored into a scratch database on the same server and compared
with its source as the dump saw it (one exported snapshot serves both): every table present, and each
compared table's row count and order-independent checksum of its rows equal. The restore's duration is
the measured time to recover.

A scratch database is named `<db>_drill_<run>`; the drill holds an advisory lock on that name while it
exists, so a later drill drops one that a killed run left behind, never one another drill is using.

    >>> scratch_name("demo", "20261202T053000Z-local-deploy-ab12cd")
    'demo_drill_20261202t053000z_ab12cd'
"""

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterator

import psycopg
from psycopg import sql

from runbook.config import Environment
from runbook.database import commands, queries, rehearsal
from runbook.database.login import login
from runbook.database.migrations import Migration
from runbook.database.rehearsal import Rehearsed
from runbook.errors import ActionFailed
from runbook.hosts import commands as host_commands
from runbook.hosts import connection, runner

TABLES = ("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
          " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
          " AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname <> 'runbook_snapshot' ORDER BY 1")
"""Every ordinary table outside the system schemas and the runbook's own (`rows.SCHEMA`), as `schema.table`."""
FIGURES = sql.SQL("SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h::numeric), 0)::text FROM ({}) hashed(h)")
"""A table's row count, and the XOR and the sum of its rows' hashes: equal for equal rows, whatever their
order (the sum tells apart what the XOR does not: two equal rows changed alike cancel out in it)."""
BY_VALUE = sql.SQL("SELECT hash_record_extended(t, 0) FROM {} t")
"""Each row's 64-bit hash from its columns' own hash functions, computed on the values without writing them
as text: about eight times faster than `BY_TEXT`."""
BY_TEXT = sql.SQL("SELECT ('x' || left(md5(t::text), 16))::bit(64)::bigint FROM {} t")
"""Each row's hash from its text, for a table with a column whose type has no hash function (json, point)."""
SAME_TEXT = ["SET TIME ZONE 'UTC'", "SET DateStyle = ISO", "SET IntervalStyle = postgres",
             "SET extra_float_digits = 3", "SET bytea_output = hex"]
"""Settings that fix how rows are written as text, so the source and the copy hash alike (a database's own
settings are not in its dump)."""
ACTIVITY = "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
LOCK = "SELECT pg_try_advisory_lock(hashtext('runbook restore drill ' || %s))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext('runbook restore drill ' || %s))"


@dataclass(frozen=True)
class Figures:
    rows: int
    checksum: int
    total: str
    """The sum of the rows' hashes, as decimal text (it outgrows 64 bits)."""


@dataclass
class Source:
    """The database as the dump sees it: its exported snapshot, and what the drill compares the copy with."""

    snapshot: str
    lsn: str
    """The WAL position when the snapshot was taken: a point-in-time recovery can start from it."""
    size_bytes: int
    depth: str
    tables: list[str]
    figures: dict[str, Figures]
    """The compared tables' figures: every table in a full drill, the protected ones in a schema drill."""
    activity: dict[str, dict[str, int]]
    """Each table's rows inserted, updated and deleted since the server's statistics began, at the dump."""


@dataclass(frozen=True)
class Drill:
    database: str
    depth: str
    restore_seconds: float
    """The time to recover: how long the restore took."""
    compare_seconds: float
    tables: int
    compared: dict[str, Figures]
    leftovers_dropped: list[str]
    rehearsal: list[Rehearsed]
    """The pending migrations rehearsed on the copy (`database.drill.rehearse`)."""

    def as_record(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        rows = sum(f.rows for f in self.compared.values())
        what = ("every table's data" if self.depth == "full" else
                "the schema and the protected tables' data (foreign keys left out)")
        return [*(f"dropped {name}, a scratch database a killed drill left behind" for name in self.leftovers_dropped),
                f"restore drill ({self.depth}: {what}) into the scratch database {self.database}: time to recover "
                f"{self.restore_seconds:.2f} s; all {self.tables} tables present; row counts and checksums of "
                f"{len(self.compared)} tables ({rows} rows) equal to the database's at the dump "
                f"(compared in {self.compare_seconds:.2f} s); {self.database} dropped",
                *(f"rehearsed {r.migration} on the copy: up {r.up_seconds:.2f} s, down {r.down_seconds:.2f} s, up again; "
                  f"its down part returns the schema to what it was; its up part locks {_locks(r)} and touches "
                  f"{_rows(r)}" for r in self.rehearsal)]


def _locks(r: Rehearsed) -> str:
    return ", ".join(f"{t} in {m}" for t, m in r.locks.items()) or "no table"


def _rows(r: Rehearsed) -> str:
    each = f" ({', '.join(f'{t}: {n}' for t, n in r.rows.items())})" if r.rows else ""
    return f"{sum(r.rows.values())} rows{each}"


def scratch_name(database: str, run_id: str) -> str:
    """`<db>_drill_<run's start>_<run's token>`, within PostgreSQL's 63 characters."""
    stamp, token = run_id.split("-", 1)[0].lower(), run_id.rsplit("-", 1)[-1].lower()
    return f"{prefix(database)}{re.sub(r'[^a-z0-9]', '', stamp)}_{re.sub(r'[^a-z0-9]', '', token)}"


def prefix(database: str) -> str:
    return f"{database[:33]}_drill_"


def measure(conn: psycopg.Connection, tables: list[str]) -> dict[str, Figures]:
    for setting in SAME_TEXT:
        conn.execute(setting)
    return {t: _figures(conn, sql.Identifier(*t.split(".", 1))) for t in tables}


def _figures(conn: psycopg.Connection, table: sql.Identifier) -> Figures:
    """The table's figures from its rows' hashes by value, or by text where a column's type has no hash
    function (the same table on a copy takes the same way; a savepoint keeps the caller's transaction usable)."""
    try:
        with conn.transaction():
            return Figures(*conn.execute(FIGURES.format(BY_VALUE.format(table))).fetchone())
    except psycopg.errors.UndefinedFunction:
        return Figures(*conn.execute(FIGURES.format(BY_TEXT.format(table))).fetchone())


def protected_in(tables: list[str], protected: list[str]) -> list[str]:
    """The tables of `tables` that `protected` names, as `schema.table` or by the name alone."""
    return [t for t in tables if t in protected or t.split(".", 1)[1] in protected]


@contextlib.contextmanager
def source(env: Environment) -> Iterator[Source]:
    """A read-only REPEATABLE READ transaction on the database, open while the caller dumps it with the
    snapshot it exported; its figures are taken in that snapshot, so concurrent writes change neither.

    The server computes the figures while the caller dumps (a thread waits on them): they read the same
    tables as pg_dump, in the same snapshot, and are in `figures` when the block ends. A block that fails
    cancels them."""
    with queries.connect(env) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        lsn = conn.execute(queries.LSN).fetchone()[0]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        depth = env.database.drill.depth_for(size)
        tables = [r[0] for r in conn.execute(TABLES)]
        compared = tables if depth == "full" else protected_in(tables, env.rollback.protected_tables)
        activity = {r[0]: {"inserted": r[1], "updated": r[2], "deleted": r[3]} for r in conn.execute(ACTIVITY)}
        seen = Source(snapshot, lsn, size, depth, tables, {}, activity)
        with ThreadPoolExecutor(1, thread_name_prefix="figures") as pool:
            measuring = pool.submit(measure, conn, compared)
            try:
                yield seen
            except BaseException:
                conn.cancel_safe()
                raise
            seen.figures = measuring.result()


def run(env: Environment, path: str, directory: bool, source: Source, run_id: str,
        pending: list[Migration] | None = None) -> Drill:
    """Restore the dump at `path` into a scratch database, compare it with `source`, rehearse the `pending`
    migrations on it, drop it (also when any of that fails, or the run is stopped); `ActionFailed` naming
    each difference."""
    name = scratch_name(psycopg.conninfo.conninfo_to_dict(queries.url(env))["dbname"], run_id)
    with scratch(env, name) as leftovers:
        started = time.monotonic()
        _restore(env, path, directory, name, source)
        restored = time.monotonic()
        with queries.connect(env, dbname=name) as conn:
            present = {r[0] for r in conn.execute(TABLES)}
            copy = measure(conn, [t for t in source.figures if t in present])
        problems = differences(source, present, copy)
        if problems:
            raise ActionFailed(f"restore drill of {path} into {name}: " + "; ".join(problems))
        compared = round(time.monotonic() - restored, 3)
        rehearsed = rehearsal.run(env, name, pending) if pending else []
        return Drill(name, source.depth, round(restored - started, 3), compared, len(source.tables), copy, leftovers,
                     rehearsed)


def differences(source: Source, present: set[str], copy: dict[str, Figures]) -> list[str]:
    """What the copy lacks or has otherwise than the database had at the dump."""
    found = [f"table {t} is missing from the copy" for t in source.tables if t not in present]
    for table, want in source.figures.items():
        got = copy.get(table)
        if got is None:
            continue
        if got.rows != want.rows:
            found.append(f"table {table} has {got.rows} rows in the copy, {want.rows} in the database at the dump")
        elif (got.checksum, got.total) != (want.checksum, want.total):
            found.append(f"table {table}: its {got.rows} rows differ in content from the database's at the dump "
                         f"(checksum {got.checksum:x} sum {got.total}, expected {want.checksum:x} sum {want.total})")
    return found


def _restore(env: Environment, path: str, directory: bool, name: str, source: Source) -> None:
    """pg_restore into the scratch database; a schema drill restores a table of contents without the data of
    unprotected tables, nor foreign keys (their rows are not there to satisfy them)."""
    host, database = env.backup_host, env.database
    listing = None
    if source.depth == "schema":
        toc = runner.must(host, commands.table_of_contents(database.pg_restore, path), what=f"listing backup {path}",
                          kind="backup")
        listing = str(database.backup_dir / f".{name}.list")
        connection.put(host, listing, schema_entries(toc, set(source.figures)).encode(), 0o600)
    try:
        with login(env, name) as (conninfo, password_file):
            argv = commands.drill_restore(database.pg_restore, path, directory, database.dump_jobs, conninfo,
                                          password_file, listing)
            runner.must(host, argv, what=f"restore drill of {path} into {name}", kind="backup")
    finally:
        if listing:
            runner.must(host, host_commands.remove_files(listing), what=f"removing {listing}")


def schema_entries(toc: str, kept: set[str]) -> str:
    """`pg_restore --list` output without the data of the tables not `kept`, and without foreign keys."""
    def wanted(line: str) -> bool:
        data = re.search(r" TABLE DATA (\S+) (\S+) ", line)
        return " FK CONSTRAINT " not in line and (data is None or f"{data.group(1)}.{data.group(2)}" in kept)
    return "\n".join(line for line in toc.splitlines() if wanted(line)) + "\n"


@contextlib.contextmanager
def scratch(env: Environment, name: str) -> Iterator[list[str]]:
    """An empty scratch database `name`, dropped after whatever happens; yields the leftovers of killed
    drills it dropped first."""
    with queries.connect(env) as guard:
        leftovers = _drop_leftovers(guard, prefix(guard.info.dbname))
        guard.execute(LOCK, [name])
        try:
            guard.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as e:
            raise ActionFailed(f"cannot create the restore drill's scratch database {name}: {e}".strip()) from None
        try:
            yield leftovers
        except BaseException as e:
            left = _drop(guard, name)
            if isinstance(e, ActionFailed):
                raise ActionFailed(f"{e}; the scratch database {name} was {left}", e.exit_code) from None
            raise
        left = _drop(guard, name)
        if left != "dropped":
            raise ActionFailed(f"the restore drill passed, but its scratch database {name} was {left}")


def _drop_leftovers(guard: psycopg.Connection, start: str) -> list[str]:
    """Drop every scratch database of this database that no drill holds (a killed run's)."""
    names = [r[0] for r in guard.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [start])]
    dropped = []
    for name in names:
        if guard.execute(LOCK, [name]).fetchone()[0]:
            dropped += [name] if _drop(guard, name) == "dropped" else []
    return dropped


def _drop(guard: psycopg.Connection, name: str) -> str:
    """Drop the scratch database (ending any session still in it) and its lock; how that went."""
    try:
        guard.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        guard.execute(UNLOCK, [name])
    except Exception as e:  # the server went away: the next drill drops it
        return f"NOT dropped ({type(e).__name__}: {e}); the next drill drops it"
    return "dropped"

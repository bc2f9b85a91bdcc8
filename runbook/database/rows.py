"""The protected tables' rows: a snapshot before a deploy (Step 3), compared after it (Steps 9 and 16).

A snapshot holds, per table, its columns, row count and order-independent checksum (the restore drill's
figures), constant in size whatever the number of rows. The digest of every row stays on the server, in
a table of the schema `runbook_snapshot` that dumps and drills leave out, so "every row from before is
still there" is answered by an `EXCEPT ALL` in SQL and no row reaches Python; it is run only when a
table's count or checksum differ from the snapshot's. A finished run drops its digest table; a new snapshot
drops any left (one run at a time holds the deploy lock, and a killed run keeps its snapshot with its intent).
"""

import hashlib
import secrets

import psycopg
from psycopg import errors, sql

from runbook.config import Environment
from runbook.database import drill, queries
from runbook.errors import ActionFailed
from runbook.findings import Finding

SCHEMA = "runbook_snapshot"
"""Where the snapshot's row digests are kept on the server."""
LOST = sql.SQL("SELECT count(*) FROM (SELECT digest FROM {} WHERE tbl = %s EXCEPT ALL SELECT md5(t::text) FROM {} t) lost")
"""How many rows from before (duplicates counted) are missing or changed now."""


def _name(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split(".", 1))


def _columns(conn: psycopg.Connection, name: sql.Identifier) -> list[str]:
    return [c.name for c in conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(name)).description]


def _figures(conn: psycopg.Connection, table: str) -> tuple[list[str] | None, drill.Figures | None]:
    """The table's columns and figures, both None when it does not exist (a savepoint keeps the caller's
    transaction usable)."""
    try:
        with conn.transaction():
            return _columns(conn, _name(table)), drill.measure(conn, [table])[table]
    except errors.UndefinedTable:
        return None, None


def _hex(figures: drill.Figures | None) -> str | None:
    """The drill's XOR and sum of the rows' hashes as one digest of fixed length (64 hex digits)."""
    if figures is None:
        return None
    return hashlib.sha256(f"{figures.checksum} {figures.total}".encode()).hexdigest()


def snapshot(env: Environment, tables: list[str]) -> dict[str, dict]:
    """Each table's columns, row count and checksum (None for a table that does not exist), taken in one
    REPEATABLE READ transaction with the digests of its rows kept on the server under `kept`."""
    table_name = f"rows_{secrets.token_hex(6)}"
    kept = sql.Identifier(SCHEMA, table_name)
    result = {}
    with queries.connect(env) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        except errors.InsufficientPrivilege:
            raise ActionFailed(f"database {queries.endpoint(env)}: the runbook's login may not create the schema "
                               f"{SCHEMA}, where the protected rows' digests are kept (GRANT CREATE ON DATABASE "
                               "... TO it, or create the schema owned by it)") from None
        for (old,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [SCHEMA]).fetchall():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, old)))
        conn.execute(sql.SQL("CREATE TABLE {} (tbl text NOT NULL, digest text NOT NULL)").format(kept))
        for table in tables:
            columns, figures = _figures(conn, table)
            if figures is not None:
                conn.execute(sql.SQL("INSERT INTO {} SELECT %s, md5(t::text) FROM {} t").format(kept, _name(table)),
                             [table])
            result[table] = {"columns": columns, "rows": figures and figures.rows,
                             "checksum": _hex(figures), "kept": f"{SCHEMA}.{table_name}"}
    return result


def drop(env: Environment, taken: dict[str, dict] | None) -> list[str]:
    """Drop the digests a finished run's snapshot kept on the server; what was done, or why it was not
    (the next snapshot drops them then): a run that is over does not fail for it."""
    kept = sorted({t["kept"] for t in (taken or {}).values() if t.get("kept")})
    try:
        with queries.connect(env) as conn:
            for name in kept:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*name.split(".", 1))))
    except Exception as e:  # psycopg's errors, a database that does not answer: the run's work is done
        return [f"kept the protected rows' digests {', '.join(kept)} (the next snapshot drops them): {e}"]
    return [f"dropped the protected rows' digests {name}" for name in kept]


def unchanged(env: Environment, before: dict[str, dict]) -> list[Finding]:
    """Whether every row a table had at the snapshot `before` is still there, unchanged (new rows may
    have come).

    A table whose columns changed since (a rollback's down migration dropped one) cannot have its rows
    compared by content: its row count is, and the detail says so."""
    found = []
    with queries.connect(env) as conn:
        for table, was in before.items():
            columns, now = _figures(conn, table)
            rows = now and now.rows
            if was["columns"] is not None and columns not in (None, was["columns"]):
                kept = (rows or 0) >= (was["rows"] or 0)
                found.append(Finding(f"table {table}", kept, f"{rows} rows now, {was['rows']} before; its columns "
                                     f"changed since ({', '.join(was['columns'])} -> {', '.join(columns)}), so "
                                     "the row count is compared, not each row"))
                continue
            found.append(_compared(conn, table, was, now))
    return found


def _compared(conn: psycopg.Connection, table: str, was: dict, now: drill.Figures | None) -> Finding:
    subject = f"table {table}"
    if now is not None and (now.rows, _hex(now)) == (was["rows"], was.get("checksum")):
        return Finding(subject, True, f"all {now.rows} rows from before the deploy are there, unchanged "
                                      "(same row count and checksum)")
    if not was["rows"]:
        return Finding(subject, True, f"it had no rows before the deploy ({now.rows if now else 'no table'} now)")
    if now is None:
        return Finding(subject, False, f"the table is gone: all {was['rows']} rows from before the deploy are missing")
    if not was.get("kept"):
        return Finding(subject, False, "count or checksum differ from the snapshot's, which keeps no row digests "
                                       "(taken by an older runbook), so its rows cannot be compared")
    try:
        with conn.transaction():
            lost = conn.execute(LOST.format(sql.Identifier(*was["kept"].split(".", 1)), _name(table)),
                                [table]).fetchone()[0]
    except errors.UndefinedTable:
        return Finding(subject, False, f"count or checksum differ from the snapshot's and its row digests "
                                       f"({was['kept']}) are gone, so its rows cannot be compared")
    detail = (f"{lost} of its {was['rows']} rows from before the deploy are missing or changed" if lost
              else f"all {was['rows']} rows from before the deploy are there, unchanged ({now.rows} rows now)")
    return Finding(subject, not lost, detail)

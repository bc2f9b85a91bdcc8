"""What a rollback would cost the data, measured now: the rows that the down migrations' drops hold, and
the writes since a backup that restoring it throws away (from the growth of `pg_stat_user_tables`'
counters since the backup recorded them)."""

from dataclasses import asdict, dataclass

from psycopg import errors, sql

from runbook.config import Environment
from runbook.database import drill, queries
from runbook.database.migrations import Migration, dropped_by
from runbook.times import between, parse, utc_now


@dataclass(frozen=True)
class Dropped:
    """A table or column a down migration drops, and the rows it holds now (None: it does not exist)."""

    migration: str
    table: str
    column: str | None
    rows: int | None

    def __str__(self) -> str:
        if self.column is None:
            held = "does not exist now" if self.rows is None else f"{self.rows} rows now"
            return f"table {self.table} ({held}, by {self.migration})"
        held = "does not exist now" if self.rows is None else f"{self.rows} rows hold a value in it now"
        return f"column {self.table}.{self.column} ({held}, by {self.migration})"


def dropped(env: Environment, migrations: list[Migration]) -> list[Dropped]:
    """What the down parts of `migrations` drop, with the rows each holds now."""
    found = []
    with queries.connect(env) as conn:
        for migration in migrations:
            for table, column in dropped_by(migration):
                name = sql.Identifier(*table.split(".", 1))
                query = (sql.SQL("SELECT count(*) FROM {}").format(name) if column is None else
                         sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(name, sql.Identifier(column)))
                try:
                    rows = conn.execute(query).fetchone()[0]
                except (errors.UndefinedTable, errors.UndefinedColumn):
                    rows = None
                found.append(Dropped(migration.label, table, column, rows))
    return found


@dataclass(frozen=True)
class Loss:
    """The writes a restore of the backup discards: every one made since it was taken."""

    backup: str
    taken: str | None
    seconds: float | None
    """Time since the backup was taken."""
    lsn: str | None
    inserted: int | None
    updated: int | None
    deleted: int | None
    """Rows inserted, updated and deleted since the backup, in all tables; None: not known (a backup that did
    not record the counters, or the server's statistics were reset since)."""
    tables: dict[str, dict[str, int]]
    """The tables written since the backup, with their rows inserted, updated and deleted."""

    def as_record(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        age = f"{self.seconds:.0f} s ago" if self.seconds is not None else "at an unrecorded time"
        what = (f"{self.inserted} rows inserted, {self.updated} updated and {self.deleted} deleted since"
                if self.inserted is not None else "an unknown number of rows written since (no statistics to compare)")
        by_table = "; ".join(f"{t}: {c['inserted']} inserted, {c['updated']} updated, {c['deleted']} deleted"
                             for t, c in self.tables.items())
        return (f"backup {self.backup} taken {self.taken or ''} ({age}, WAL position {self.lsn or 'unknown'}): "
                f"{what}" + (f" ({by_table})" if by_table else ""))


def since(env: Environment, backup: dict) -> Loss:
    """The writes made since `backup` (a `backup.Backup` record) was taken."""
    then = backup.get("activity")
    with queries.connect(env) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        now = {r[0]: {"inserted": r[1], "updated": r[2], "deleted": r[3]} for r in conn.execute(drill.ACTIVITY)}
    tables, known = {}, then is not None
    for table, counts in now.items():
        before = (then or {}).get(table, {"inserted": 0, "updated": 0, "deleted": 0})
        grown = {k: counts[k] - before[k] for k in counts}
        known = known and min(grown.values()) >= 0
        if any(grown.values()):
            tables[table] = grown
    total = {k: sum(t[k] for t in tables.values()) if known else None for k in ("inserted", "updated", "deleted")}
    taken = backup.get("taken")
    return Loss(backup["path"], taken, between(parse(taken), utc_now()) if taken else None, backup.get("lsn"),
                total["inserted"], total["updated"], total["deleted"], tables if known else {})

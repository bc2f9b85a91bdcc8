"""The facts a run's record keeps beyond its phases, as typed parts of `runbook.record.model.Record`:
the approval, the package, the backup, migrations, rollback, notifications, signing, and so on.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from runbook.governance.notify import Event

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Part(BaseModel):
    """A part of the record: each field documented, and a field the record does not define refused."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Host(Part):
    name: str
    """The host's name in the environment file."""
    spec: str
    """How the runbook reaches it, e.g. `ssh://deploy@web1` or `local://`."""
    roles: list[str]
    """What the host is for: app, migrate, backup, ..."""


class Approval(Part):
    """The approval the deploy ran under (Step 6 and the prerequisites)."""

    change: str | None
    """The change ticket; null when the environment requires none."""
    approved_by: str | None
    """Who approved the change (never the operator); null when no approver is required."""
    emergency: bool
    """An emergency deploy, allowed outside the maintenance windows and through a freeze."""
    reason: str | None
    """Why an emergency deploy could not wait."""
    window: str
    """The maintenance window the deploy started in, or why none was needed."""


class Package(Part):
    """The release package deployed, verified against its manifest."""

    path: str
    """Where the package was taken from on the runner."""
    sha256: SHA256
    """The package's checksum."""


class TableFigures(Part):
    rows: int = Field(ge=0)
    """The table's row count."""
    checksum: int
    """The XOR of its rows' 64-bit hashes (by value; by the md5 of the row's text where a column's type has no
    hash function): equal for equal rows, in any order."""
    total: str
    """The sum of the same hashes, as decimal text: it tells apart equal rows changed alike, which cancel in the XOR."""


class Rehearsed(Part):
    migration: str
    """The migration, `<version>_<name>`."""
    up_seconds: float = Field(ge=0)
    """How long its up part took on the copy."""
    down_seconds: float = Field(ge=0)
    """How long its down part took on the copy."""
    locks: dict[str, str] = {}
    """Each table its up part locked, with the strongest mode it held, read from `pg_locks` before it committed."""
    rows: dict[str, int] = {}
    """Each table's rows its up part inserted, updated or deleted (`pg_stat_xact_user_tables`)."""
    sizes: dict[str, int] = {}
    """The size in bytes (with indexes and TOAST) on the copy, before its up part, of each table it locked and
    did not create."""


class Drill(Part):
    """The backup restored into a scratch database on the same server and compared with the database as
    the dump saw it (Step 3's "verify backup integrity")."""

    database: str
    """The scratch database, dropped after the drill."""
    depth: Literal["full", "schema"]
    """full: every table's data; schema: the schema and the protected tables' data alone."""
    restore_seconds: float = Field(ge=0)
    """The measured time to recover: how long the restore took."""
    compare_seconds: float = Field(ge=0)
    """How long comparing the copy with the database took."""
    tables: int = Field(ge=0)
    """The tables of the database at the dump, each present in the copy."""
    compared: dict[str, TableFigures]
    """The tables whose row count and checksum were compared, with the figures both had."""
    leftovers_dropped: list[str]
    """Scratch databases of killed drills this drill dropped first."""
    rehearsal: list[Rehearsed] = []
    """The deploy's pending migrations rehearsed on the copy (up, down, up), when the environment asks for it."""


class TableActivity(Part):
    inserted: int
    updated: int
    deleted: int


class Backup(Part):
    """The database backup taken before anything changed (Step 3)."""

    path: str
    """Where the dump lies on the backup host; a restore reads it from here."""
    format: Literal["custom", "directory"]
    """pg_dump's format."""
    size_bytes: int = Field(ge=0)
    """The dump's size."""
    sha256: SHA256
    """The dump's checksum (of its files, in order, for the directory format)."""
    tables: list[str]
    """Every table of the database, each listed by `pg_restore --list` in the dump."""
    host: str
    """The host that took and keeps the dump."""
    taken: str | None = None
    """When the dump's snapshot was taken (UTC)."""
    lsn: str | None = None
    """The WAL position (LSN) at the dump's snapshot: with the one at the switch, the span a point-in-time
    recovery may choose from."""
    activity: dict[str, TableActivity] | None = None
    """Each table's rows inserted, updated and deleted (the server's statistics) at the dump; a rollback that
    restores the backup states the writes since from their growth."""
    drill: Drill | None = None
    """The restore drill that verified the backup."""


class TableRows(Part):
    rows: int | None
    """The table's row count before the deploy; null when the table did not exist."""


class Switch(Part):
    """The moment the new release went live (its first switch)."""

    at: str
    """When (UTC)."""
    lsn: str
    """The database's WAL position then (or why it could not be read): with the backup's, the span a DBA may
    choose a point-in-time recovery from."""


class Migrations(Part):
    """The database migrations of the deploy (Step 8)."""

    applied: list[str]
    """The versions this deploy applied, in order; empty when none was pending."""
    schema_before: str | None
    """The schema version before the deploy; null before the first migration."""
    schema_after: str | None
    """The schema version after the migrations."""


class Rollback(Part):
    """The rollback that ran (Steps 14 to 16), automatic after a failure or asked for."""

    reason: str | None
    """Why it rolled back: the failed phase and its cause, or who asked for it."""
    from_: str | None = Field(alias="from")
    """The release rolled back from; null when none was live."""
    to: str | None
    """The release serving again; null when none was live before the deploy."""
    schema_: str | None = Field(alias="schema")
    """The schema version the database was returned to."""
    database_restored: bool
    """Whether the backup was restored (discarding every write since) rather than migrated down."""


class Dropped(Part):
    """A table or column the down migrations drop."""

    migration: str
    """The migration whose down part drops it."""
    table: str
    column: str | None
    """null: the whole table."""
    rows: int | None
    """The rows it holds (a column: rows with a value in it) when the plan was made; null: it does not exist."""


class Loss(Part):
    """What restoring the backup discards: every write made since it was taken."""

    backup: str
    """The backup's path."""
    taken: str | None
    """When it was taken (UTC)."""
    seconds: float | None
    """Time from the backup to the plan."""
    lsn: str | None
    """The WAL position at the backup."""
    inserted: int | None
    updated: int | None
    deleted: int | None
    """Rows inserted, updated and deleted since the backup, over all tables (`pg_stat_user_tables`' counters'
    growth); null: not known (the statistics were reset since, or the backup did not record them)."""
    tables: dict[str, TableActivity]
    """The tables written since the backup, each with its rows inserted, updated and deleted."""


class RollbackPlan(Part):
    """What the rollback chose to do to the database, and why, stated before it acted (Step 15)."""

    path: Literal["code only", "down migrations", "restore the backup"]
    """code only: the release returned to runs on the schema as it is (no data touched); down migrations:
    the live release's down parts revert the schema; restore the backup: the pre-deploy backup is restored."""
    why: str
    """Why this path: the release's declared schema range, the down parts found, or the operator's choice."""
    schema_now: str | None
    """The schema version when the plan was made."""
    schema_after: str | None
    """The schema version the rollback leaves."""
    dropped: list[Dropped]
    """Down migrations: what they drop, with the rows it holds now (lost)."""
    loss: Loss | None
    """Restore the backup: the writes it discards."""
    refused: str | None
    """Why this path was refused (a strict environment's restore without --accept-loss); null: it was not."""


class DatabaseRestored(Part):
    """Present when a backup was restored: the writes made since it was taken were discarded."""

    backup: str
    """The path of the backup restored."""
    note: str
    """What the restore cost, for the people who read the record."""


class Delivery(Part):
    """One notification of the run (Steps 6, 16 and 17), delivered or not."""

    name: str
    """The notification's name in the environment file."""
    kind: str
    """slack, webhook or statuspage."""
    event: Event
    """What the run told: started, succeeded, aborted, rolled_back or failed."""
    ok: bool
    """Whether it was delivered."""
    attempts: int
    """How many times it was sent."""
    status: int | None
    """The last HTTP status answered; null when there was no answer."""
    error: str
    """Why it was not delivered (redacted); empty when it was."""
    seconds: float
    """How long delivering (or trying to) took."""


class Signing(Part):
    """The key that signs the run folder's manifest, so a reader knows which key vouches for the record."""

    public_key: str
    """The Ed25519 public key, PEM."""
    fingerprint: str = Field(pattern=r"^SHA256:[0-9a-f]{64}$")
    """The public key's SHA-256 fingerprint."""


class Incident(Part):
    """The incident record written for a rollback or a failed run (Steps 17 and 18)."""

    html: str
    """The incident record's page, in the run folder."""
    markdown: str
    """The same in Markdown."""


class CrashedRun(Part):
    """A run found on the environment that stopped without finishing."""

    run_id: str
    """The crashed run's id."""
    phase: str
    """The phase it was in when it stopped."""
    description: str
    """What it left behind, and the environment's state when this run found it."""

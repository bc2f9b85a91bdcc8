"""The app's migrations as the runbook reads them: `<version>_<name>.sql` files with
`-- migrate:up` and `-- migrate:down` parts. A pending migration without a down part cannot be rolled
back, so preflight refuses it. Under the `rolling` strategy the previous release keeps serving on
the migrated schema, so preflight also refuses statements that would break it (see `ROLLING_HAZARDS`).
"""

import re
from dataclasses import dataclass

import jinja2

ROLLING_HAZARDS = {
    r"\bDROP\s+(TABLE|COLUMN)\b": "drops a table or column the previous release may still read",
    r"\bRENAME\b": "renames something the previous release still uses by its old name",
    r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b": "changes a column's type under the previous release",
    r"\bSET\s+NOT\s+NULL\b": "makes a column required that the previous release may leave empty",
    r"\bADD\s+(COLUMN\s+)?[^;]*\bNOT\s+NULL\b(?![^;]*\bDEFAULT\b)":
        "adds a required column without a default, which the previous release's inserts leave empty",
}
"""Statements an expand-only (backward-compatible) migration avoids: each, with why it breaks the release
that still serves while a rolling deploy migrates. Their place is a later release, once no code uses
the old shape."""

ENDS_TRANSACTION = re.compile(r"(?:^|;)\s*(COMMIT|END|ROLLBACK|ABORT|BEGIN|START\s+TRANSACTION)\b", re.IGNORECASE)
"""A statement that ends (or opens) a transaction inside a migration: what ran before it stays, whatever
fails after it, so the migration cannot be undone as one."""
OUTSIDE_TRANSACTION = {
    r"\b(CREATE|DROP)\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b": "builds or drops an index concurrently",
    r"\bREINDEX\b[^;]*\bCONCURRENTLY\b": "reindexes concurrently",
    r"(?:^|;)\s*VACUUM\b": "vacuums",
    r"\b(CREATE|DROP)\s+DATABASE\b": "creates or drops a database",
    r"\bALTER\s+SYSTEM\b": "changes the server's configuration",
    r"\b(CREATE|DROP)\s+TABLESPACE\b": "creates or drops a tablespace",
}
"""Statements PostgreSQL refuses inside a transaction: allowed only in a migration declared
`-- migrate:up transaction:false` whose down part undoes it."""

FILE = re.compile(r"^(?P<version>\d+)_(?P<name>[\w-]+)\.sql$")
PART = re.compile(r"^--\s*migrate:(up|down)(?:\s+transaction:(?:false|true))?\s*$", re.MULTILINE)
NON_TRANSACTIONAL = re.compile(r"^--\s*migrate:up\s+transaction:false\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    up: str
    down: str
    transactional: bool = True
    """False when declared `-- migrate:up transaction:false`: its up part runs outside a transaction."""

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def parse(file_name: str, text: str) -> Migration:
    match = FILE.match(file_name)
    pieces = PART.split(text)
    parts = {pieces[i]: pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
    return Migration(match.group("version"), match.group("name"), parts.get("up", ""), parts.get("down", ""),
                     transactional=NON_TRANSACTIONAL.search(text) is None)


def in_package(files: dict[str, bytes], folder: str) -> list[Migration]:
    """Every migration in a package's files, in version order."""
    prefix = folder.rstrip("/") + "/"
    found = [
        parse(name[len(prefix):], data.decode(errors="replace"))
        for name, data in files.items()
        if name.startswith(prefix) and FILE.match(name[len(prefix):])
    ]
    return sorted(found, key=lambda m: int(m.version))


def rolling_hazards(migration: Migration) -> list[str]:
    """Why the migration's up part is unsafe while the previous release serves (empty: it is safe)."""
    sql = re.sub(r"--[^\n]*", "", migration.up)
    return [why for pattern, why in ROLLING_HAZARDS.items() if re.search(pattern, sql, re.IGNORECASE)]


def cannot_be_undone(migration: Migration) -> list[str]:
    """Why a failure of the migration's up part would leave part of it applied (empty: it is undone whole)."""
    sql = re.sub(r"\$(\w*)\$.*?\$\1\$", "''", re.sub(r"--[^\n]*", "", migration.up), flags=re.DOTALL)
    why = []
    if ENDS_TRANSACTION.search(sql):
        why.append("ends its own transaction (COMMIT, END, ROLLBACK or BEGIN): what ran before stays if it fails")
    outside = [what for pattern, what in OUTSIDE_TRANSACTION.items() if re.search(pattern, sql, re.IGNORECASE)]
    if outside and migration.transactional:
        why.append(f"{' and '.join(outside)}, which cannot run in a transaction: declare it "
                   "`-- migrate:up transaction:false` with a down part that undoes it")
    elif outside and not migration.down:
        why.append(f"is declared transaction:false ({' and '.join(outside)}) but has no down part to undo it")
    return why


def tables_named(migrations: list[Migration], tables: list[str]) -> dict[str, list[str]]:
    """The tables (of `tables`) each up part names, with the migrations that name them: the rows a
    release may change on purpose. A schema-qualified table matches by its name alone too."""
    named: dict[str, list[str]] = {}
    for migration in migrations:
        sql = re.sub(r"--[^\n]*", "", migration.up)
        for table in tables:
            if re.search(rf"(?<![\w.]){re.escape(table.split('.')[-1])}(?!\w)", sql, re.IGNORECASE):
                named.setdefault(table, []).append(migration.label)
    return named


def pending(migrations: list[Migration], applied: set[str]) -> list[Migration]:
    return [m for m in migrations if m.version not in applied]


def command(template: list[str], python: str, version: str = "") -> list[str]:
    """An app migration command with its placeholders (`{{ python }}`, `{{ version }}`) filled in."""
    return [jinja2.Template(arg, undefined=jinja2.StrictUndefined).render(python=python, version=version) for arg in template]


DROP_TABLE = re.compile(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([\w.]+(?:\s*,\s*[\w.]+)*)", re.IGNORECASE)
ALTER_TABLE = re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.]+)\s+([^;]*)", re.IGNORECASE)
DROP_COLUMN = re.compile(r"\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!CONSTRAINT\b|DEFAULT\b|NOT\b|IDENTITY\b|"
                         r"EXPRESSION\b)(\w+)", re.IGNORECASE)


def dropped_by(migration: Migration) -> list[tuple[str, str | None]]:
    """The tables (column None) and the columns the migration's down part drops, as (table, column).

        >>> dropped_by(parse("0002_notes.sql", "-- migrate:up\\n-- migrate:down\\nALTER TABLE items DROP COLUMN note;"))
        [('items', 'note')]
    """
    text = re.sub(r"--[^\n]*", "", migration.down)
    text = text.replace('"', "")
    tables = [(t.strip(), None) for found in DROP_TABLE.findall(text) for t in found.split(",")]
    columns = [(table, column) for table, actions in ALTER_TABLE.findall(text) for column in DROP_COLUMN.findall(actions)]
    return tables + columns

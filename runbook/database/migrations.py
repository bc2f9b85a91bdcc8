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

FILE = re.compile(r"^(?P<version>\d+)_(?P<name>[\w-]+)\.sql$")
PART = re.compile(r"^--\s*migrate:(up|down)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    up: str
    down: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def parse(file_name: str, text: str) -> Migration:
    match = FILE.match(file_name)
    pieces = PART.split(text)
    parts = {pieces[i]: pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
    return Migration(match.group("version"), match.group("name"), parts.get("up", ""), parts.get("down", ""))


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


def pending(migrations: list[Migration], applied: set[str]) -> list[Migration]:
    return [m for m in migrations if m.version not in applied]


def command(template: list[str], python: str, version: str = "") -> list[str]:
    """An app migration command with its placeholders (`{{ python }}`, `{{ version }}`) filled in."""
    return [jinja2.Template(arg, undefined=jinja2.StrictUndefined).render(python=python, version=version) for arg in template]

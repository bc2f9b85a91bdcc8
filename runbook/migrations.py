"""The app's migrations as the runbook reads them: `<version>_<name>.sql` files with
`-- migrate:up` and `-- migrate:down` parts. A pending migration without a down part cannot be rolled
back, so preflight refuses it.
"""

import re
from dataclasses import dataclass

import jinja2

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


def pending(migrations: list[Migration], applied: set[str]) -> list[Migration]:
    return [m for m in migrations if m.version not in applied]


def command(template: list[str], python: str, version: str = "") -> list[str]:
    """An app migration command with its placeholders (`{{ python }}`, `{{ version }}`) filled in."""
    return [jinja2.Template(arg, undefined=jinja2.StrictUndefined).render(python=python, version=version) for arg in template]

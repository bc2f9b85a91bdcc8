"""Secret references (`${NAME}`, `${file:path}`) and the one redactor every output passes through.

Environment files never hold secret values. A value that needs one holds a reference, resolved from
the process environment or a file when a run starts; every resolved value is registered with the
redactor, so reports, records and terminal output show `***` in its place.
"""

import os
import re
from pathlib import Path

from runbook import ROOT
from runbook.errors import ConfigError

REFERENCE = re.compile(r"\$\{(?P<ref>[^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
MASK = "***"


class Redactor:
    """Replaces every registered secret value, and any password in a URL, with `***`."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def register(self, value: str) -> None:
        if value:
            self._values.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)


redact = Redactor()


def references(template: str) -> list[str]:
    """The references a value holds, e.g. `["DB_PASSWORD", "file:/run/key"]`."""
    return [m.group("ref") for m in REFERENCE.finditer(template)]


def check_reference(ref: str) -> None:
    """Raise ValueError when a reference is neither `NAME` nor `file:path`."""
    if ref.startswith("file:"):
        if not ref[5:]:
            raise ValueError(f"${{{ref}}}: a file reference needs a path")
    elif not NAME.match(ref):
        raise ValueError(f"${{{ref}}} is not a valid reference (use ${{NAME}} or ${{file:path}})")


def secret_file(ref: str) -> Path:
    """The file of a `file:` reference; a relative path is taken from the project folder."""
    return ROOT / ref[5:]


def _resolve(ref: str) -> str:
    if ref.startswith("file:"):
        path = secret_file(ref)
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"secret file {path} cannot be read: {e.strerror}") from None
    if ref not in os.environ:
        raise ConfigError(f"${{{ref}}} is not set in the process environment")
    return os.environ[ref]


def expand(template: str) -> str:
    """The template with every reference replaced by its value; each value is registered for redaction."""

    def value(match: re.Match) -> str:
        resolved = _resolve(match.group("ref"))
        redact.register(resolved)
        return resolved

    return REFERENCE.sub(value, template)

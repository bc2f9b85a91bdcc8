"""Secret references (`${NAME}`, `${file:path}`) and the one redactor every output passes through.

Environment files never hold secret values. A value that needs one holds a reference, resolved from
the process environment or a file when a run starts; every resolved value is registered with the
redactor, so reports, records and terminal output show `***` in its place: the value itself and every
form it takes on the way out (shell-quoted, dotenv-escaped, JSON- and HTML-escaped, each line of a
multi-line value). The values a deployed config file held before a rotation are registered when it is
read (`learn`), and a run's folder passes through the redactor once more before it is signed
(`redact_files`).
"""

import html
import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

import markupsafe

from runbook import ROOT, envfile
from runbook.errors import ConfigError

REFERENCE = re.compile(r"\$\{(?P<ref>[^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)
MASK = "***"
MIN_LINE = 8
"""A line of a multi-line secret is masked on its own from this length (shorter lines are too common)."""


def forms(value: str) -> set[str]:
    """Every way `value` can be written out: as itself, shell-quoted, dotenv-escaped, each line of it,
    and each of those escaped for a Python repr, JSON, and HTML (also HTML around JSON, as pytest-html
    embeds its data)."""
    lines = value.splitlines()
    written = {value, shlex.quote(value), envfile.quote(value)[1:-1]}
    written |= {line for line in lines if len(line) >= MIN_LINE} if len(lines) > 1 else set()
    escaped = {text for w in written for text in (w, repr(w)[1:-1], json.dumps(w)[1:-1],
                                                      json.dumps(w, ensure_ascii=False)[1:-1])}
    return {text for e in escaped for text in (e, html.escape(e), html.escape(e, quote=False),
                                               str(markupsafe.escape(e)))}


class Redactor:
    """Replaces every registered secret value, in any of its `forms`, and any password in a URL, with `***`."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern | None = None

    def register(self, value: str) -> None:
        if value and value not in self._values:
            self._values.add(value)
            self._pattern = None

    def register_url(self, url: str) -> None:
        """Register the password a URL carries (as written and decoded), if any."""
        try:
            password = urlsplit(url).password
        except ValueError:
            return
        for value in {password, unquote(password or "")}:
            self.register(value or "")

    def __call__(self, text: str) -> str:
        if self._values and self._pattern is None:
            found = {form for value in self._values for form in forms(value)}
            self._pattern = re.compile("|".join(re.escape(f) for f in sorted(found, key=len, reverse=True)))
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
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


def _template(template: str) -> re.Pattern:
    """A pattern a text rendered from `template` matches, with a group for each reference's value."""
    parts = REFERENCE.split(template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "(.*?)" for i, p in enumerate(parts)), re.DOTALL)


def learn(template: str, rendered: str) -> None:
    """Register the values the references of `template` had in `rendered`, a text made from it before
    (a deployed config file): after a rotation, the previous values are secrets still. Where the whole
    text no longer fits the template, each of its lines that fits a line of the template with a
    reference is read."""
    whole = _template(template).fullmatch(rendered)
    matches = [whole] if whole else [_template(line).fullmatch(old) for line in template.splitlines()
                                     if references(line) for old in rendered.splitlines()]
    for match in filter(None, matches):
        for value in match.groups():
            redact.register(value)


def redact_files(folder: Path) -> None:
    """Pass every text file under `folder` through the redactor, rewriting those it changes: the last
    line of defence before a run's folder is signed."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_bytes().decode()
        except (OSError, UnicodeDecodeError):
            continue
        masked = redact(text)
        if masked != text:
            path.write_bytes(masked.encode())

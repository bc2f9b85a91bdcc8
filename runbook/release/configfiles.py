"""The configuration files an environment gives its app, rendered and compared with the deployed ones."""

import difflib
import shlex

from runbook.database import queries
from runbook.hosts import connection
from runbook.config import ConfigFile, Environment
from runbook.secrets import expand, redact


def render(env: Environment, file: ConfigFile) -> str:
    """The file's content with every secret resolved (never print it unredacted)."""
    if file.content is not None:
        return expand(file.content)
    values = {key: expand(value) for key, value in file.env.items()}
    if file.database_url_as:
        values[file.database_url_as] = queries.url(env)
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def deployed(env: Environment, file: ConfigFile, release: str | None = None) -> str | None:
    """The file as `release` (default: the current one) has it on the first app host; None when there is none."""
    base = env.app.releases / release if release else env.app.current
    return connection.read(env.hosts_with("app")[0], str(base / file.path))


def diff(env: Environment, file: ConfigFile, old_text: str | None) -> str:
    """A unified diff, redacted, from `old_text` (None: nothing deployed yet) to the file this release gets."""
    new = redact(render(env, file)).splitlines(keepends=True)
    if old_text is None:
        old, label = [], "(not deployed yet)"
    else:
        old, label = redact(old_text).splitlines(keepends=True), f"deployed {file.path}"
    lines = list(difflib.unified_diff(old, new, fromfile=label, tofile=f"new {file.path}"))
    return "".join(lines) or f"{file.path}: unchanged\n"

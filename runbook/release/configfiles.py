"""The configuration files an environment gives its app, rendered and compared with the deployed ones.

An env file is written in the dotenv format the app reads (`runbook.envfile`). Reading a deployed file
registers the secret values it held (those of the keys a reference fills, and the database URL's
password) with the redactor: after a rotation they are no longer the current ones, and still secret.
"""

import difflib

from runbook import envfile
from runbook.database import queries
from runbook.hosts import connection
from runbook.config import ConfigFile, Environment
from runbook.secrets import expand, learn, redact, references


def render(env: Environment, file: ConfigFile) -> str:
    """The file's content with every secret resolved (never print it unredacted)."""
    if file.content is not None:
        return expand(file.content)
    values = {key: expand(value) for key, value in file.env.items()}
    if file.database_url_as:
        values[file.database_url_as] = queries.url(env)
    return envfile.render(values)


def learn_secrets(file: ConfigFile, text: str) -> None:
    """Register with the redactor the secret values a deployed version of `file` holds."""
    if file.content is not None:
        learn(file.content, text)
        return
    values = envfile.parse(text)
    for key, template in file.env.items():
        if references(template) and key in values:
            redact.register(values[key])
            learn(template, values[key])
    if file.database_url_as in values:
        redact.register_url(values[file.database_url_as])


def deployed(env: Environment, file: ConfigFile, release: str | None = None) -> str | None:
    """The file as `release` (default: the current one) has it on the first app host; None when there is
    none. Its secret values are known to the redactor from then on."""
    base = env.app.releases / release if release else env.app.current
    text = connection.read(env.hosts_with("app")[0], str(base / file.path))
    if text is not None:
        learn_secrets(file, text)
    return text


def diff(env: Environment, file: ConfigFile, old_text: str | None) -> str:
    """A unified diff, redacted, from `old_text` (None: nothing deployed yet) to the file this release gets.
    The texts are compared before redaction, so a rotated secret shows as a changed `***` line."""
    new = render(env, file).splitlines(keepends=True)
    old = [] if old_text is None else old_text.splitlines(keepends=True)
    label = "(not deployed yet)" if old_text is None else f"deployed {file.path}"
    lines = list(difflib.unified_diff(old, new, fromfile=label, tofile=f"new {file.path}"))
    return redact("".join(lines)) or f"{file.path}: unchanged\n"

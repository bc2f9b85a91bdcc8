"""Configuration shared by the demo app and its migration tool.

Values come from the process environment. A ``.env`` file in the app directory
(the directory of this module) fills in keys the environment does not set; it is
read with python-dotenv, without ``$`` interpolation, exactly as the runbook writes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from dotenv.parser import parse_stream
from psycopg.conninfo import conninfo_to_dict

APP_DIR = Path(__file__).resolve().parent
CONNECT_TIMEOUT_SECONDS = 3
MAX_REASON_LENGTH = 200


class ConfigError(Exception):
    """The configuration is missing or malformed."""


def load_env_file(path: Path = APP_DIR / ".env") -> None:
    """Copy the values of the dotenv file ``path`` into ``os.environ`` for keys not yet set."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            if binding.error:
                raise ConfigError(f"{path}:{binding.original.line}: not a dotenv KEY=VALUE line")
            if binding.key is not None and binding.value is not None:
                os.environ.setdefault(binding.key, binding.value)


def get(name: str) -> str | None:
    """The value of an environment variable, or None when it is unset or empty."""
    return os.environ.get(name) or None


def database_url() -> str:
    """The libpq URL of the database; raises ConfigError when it is not set."""
    url = get("DATABASE_URL")
    if url is None:
        raise ConfigError("DATABASE_URL is not set")
    return url


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """Open a connection that gives up after CONNECT_TIMEOUT_SECONDS."""
    return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS, **kwargs)


def describe_error(error: psycopg.Error, url: str) -> str:
    """The first line of a database error, with any password of ``url`` masked."""
    lines = str(error).strip().splitlines()
    reason = lines[0] if lines else type(error).__name__
    for password in _passwords(url):
        reason = reason.replace(password, "***")
    return reason[:MAX_REASON_LENGTH]


def _passwords(url: str) -> set[str]:
    found = {urlsplit(url).password}
    try:
        found.add(conninfo_to_dict(url).get("password"))
    except psycopg.Error:
        pass
    found |= {unquote(password) for password in found if password}
    return {password for password in found if password}

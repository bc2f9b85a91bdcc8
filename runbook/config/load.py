"""An environment read from its file: the file found by name, its relative paths resolved, its problems
named by key and line, and its secret references resolved."""

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runbook import ROOT
from runbook.config import yamlfile
from runbook.config.base import _key
from runbook.config.environment import Environment
from runbook.errors import ConfigError
from runbook.secrets import expand

ENVIRONMENTS = ROOT / "environments"


def environment_path(name: str) -> Path:
    """The file for an environment name (`prod`) or path (`environments/prod.yaml`)."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"environment name {name!r} is not valid: use letters, digits, '-', '_', '.'")
    path = ENVIRONMENTS / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in ENVIRONMENTS.glob("*.yaml"))) or "none"
        raise ConfigError(f"unknown environment {name!r}: there is no {path} (known: {known})")
    return path


LOCAL_PATHS = (
    ("inventory",),
    ("ssh", "identity_file"),
    ("ssh", "known_hosts"),
    ("app", "package_dir"),
    ("app", "root"),
    ("database", "backup_dir"),
    ("local", "state_dir"),
    ("attestations", "file"),
    ("signing", "public_key"),
    ("attestations", "attesters", "*"),
    ("files", "*", "path"),
    ("security", "secret_files", "*", "path"),
    ("security", "audit", "log"),
    ("dependencies", "*", "path"),
    ("dependencies", "*", "ca_file"),
    ("endpoints", "ca_file"),
    ("tls", "*", "ca_file"),
    ("load_balancer", "socket"),
)


def _resolve_paths(data: Any, keys: tuple, base: Path) -> None:
    """Relative paths in the file are taken from the project folder, not from the current one."""
    head, rest = keys[0], keys[1:]
    if head == "*":
        items = list(enumerate(data)) if isinstance(data, list) else []
    else:
        items = [(head, data[head])] if isinstance(data, dict) and head in data else []
    for key, value in items:
        if rest:
            _resolve_paths(value, rest, base)
        elif isinstance(value, str) and value and not value.startswith(("/", "~")):
            data[key] = str(base / value)


def load_environment(name: str) -> Environment:
    """Read and validate an environment; `ConfigError` (exit 2) names file, key, line and problem."""
    path = environment_path(name)
    try:
        data, lines = yamlfile.load(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: the environment file does not exist") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: malformed YAML: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top, got {type(data).__name__}")
    for keys in LOCAL_PATHS:
        _resolve_paths(data, keys, ROOT)
    try:
        env = Environment(**data)
    except ValidationError as e:
        raise ConfigError(_describe(path, e, lines)) from None
    except ConfigError as e:  # the inventory could not be read
        raise ConfigError(f"{path}: inventory (line {lines[('inventory',)]}): {e}") from None
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return env.model_copy(update={"source": path})


def _describe(path: Path, error: ValidationError, lines: dict) -> str:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        while loc and loc not in lines:
            loc = loc[:-1]
        line = f" (line {lines[loc]})" if loc in lines else ""
        key = _key(tuple(item["loc"])) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{path}: {key}{line}: {message}")
    return "\n".join(problems)


def resolve_secrets(env: Environment) -> None:
    """Resolve every reference now, before anything runs, so each value is known to the redactor.

    An unresolvable reference is a `ConfigError` naming the key: nothing has run yet.
    """
    missing = []
    for key, template in env.secret_values():
        try:
            expand(template)
        except ConfigError as e:
            missing.append(f"{env.source}: {key}: {e}")
    if missing:
        raise ConfigError("\n".join(missing))

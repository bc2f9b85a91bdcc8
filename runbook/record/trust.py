"""Which key `invoke record.verify` trusts, and its verdict on a run folder.

The trusted key is pinned outside the run folder: `--key FILE`, or the environment file in the
repository (`signing.public_key`, else `signing.fingerprint`, else the public half of
`signing.private_key`). Nothing the folder says chooses it: its `record.json` names an environment and
a key, and both are compared with what is trusted; a difference is a problem (exit 1), never a reason
to trust something else.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook import config
from runbook.config import Environment
from runbook.errors import ConfigError
from runbook.record import signing

RECORD = "record.json"


@dataclass(frozen=True)
class Trusted:
    """The key a verification trusts: its fingerprint, and its PEM when known (not for a fingerprint alone)."""

    fingerprint: str
    public_key: bytes | None


def _key_file(path: Path, what: str) -> Trusted:
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror}") from None
    return Trusted(signing.fingerprint(pem), pem)


def pinned(env: Environment | None, key_file: Path | None) -> Trusted:
    """The trusted key: `key_file` when given, else the environment's; `ConfigError` (exit 2) without one."""
    if key_file is not None:
        return _key_file(key_file, "public key file")
    if env is None or env.signing is None:
        name = env.name if env else "(none)"
        raise ConfigError(f"environment {name!r} has no `signing` key to trust: give --key FILE")
    rules = env.signing
    if rules.public_key is not None:
        trusted = _key_file(rules.public_key, f"{env.source}: signing.public_key")
        if rules.fingerprint not in (None, trusted.fingerprint):
            raise ConfigError(f"{env.source}: signing.fingerprint {rules.fingerprint} is not the fingerprint of "
                              f"signing.public_key {rules.public_key} ({trusted.fingerprint})")
        return trusted
    if rules.fingerprint is not None:
        return Trusted(rules.fingerprint, None)
    public = signing.public_pem(signing.load_private_key(signing.private_key(env)))
    return Trusted(signing.fingerprint(public), public)


def _record(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The folder's record, and why it cannot be read."""
    try:
        data = json.loads((folder / RECORD).read_bytes())
    except FileNotFoundError:
        return {}, [f"{RECORD} is missing"]
    except (OSError, ValueError) as e:
        return {}, [f"{RECORD} cannot be read: {e}"]
    return (data, []) if isinstance(data, dict) else ({}, [f"{RECORD} is not a JSON object"])


def _named_key(record: dict[str, Any]) -> dict[str, Any]:
    found = record.get("signing")
    return found if isinstance(found, dict) else {}


def _record_problems(record: dict[str, Any], env: Environment | None, trusted: Trusted) -> list[str]:
    """Where the record names another environment or another signer than the ones trusted."""
    problems = []
    if env is not None and record and record.get("environment") != env.name:
        problems.append(f"environment: the record names {record.get('environment')!r}, verified as {env.name!r}")
    signer = _named_key(record).get("fingerprint")
    if record and signer != trusted.fingerprint:
        problems.append(f"signer: the record names key {signer or '(none)'}, the trusted key is {trusted.fingerprint}")
    return problems


def _public_key(record: dict[str, Any], trusted: Trusted) -> bytes | None:
    """The PEM to check the signature with: the trusted one, else the record's when it has the trusted fingerprint."""
    if trusted.public_key is not None:
        return trusted.public_key
    offered = _named_key(record).get("public_key")
    if not isinstance(offered, str):
        return None
    try:
        return offered.encode() if signing.fingerprint(offered.encode()) == trusted.fingerprint else None
    except ConfigError:
        return None


def verify_run(folder: Path, env_arg: str | None, key_file: Path | None = None) -> tuple[list[str], str]:
    """`invoke record.verify`: the problems of a run folder and a one-line verdict.

    `ConfigError` (exit 2) for a usage error: neither an environment nor a key file, an environment or key
    that cannot be read, a folder that is not there.
    """
    if env_arg is None and key_file is None:
        raise ConfigError("give --env NAME (the environment whose pinned key signs its runs) or --key FILE")
    env = config.load_environment(env_arg) if env_arg is not None else None
    trusted = pinned(env, key_file)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a run folder")
    record, problems = _record(folder)
    problems += _record_problems(record, env, trusted)
    problems += signing.verify(folder, _public_key(record, trusted))
    if problems:
        return problems, f"{folder}: NOT as signed ({len(problems)} problems) for key {trusted.fingerprint}"
    files = len(signing.listed(folder))
    return problems, f"{folder}: untouched, {files} files as signed by key {trusted.fingerprint}"

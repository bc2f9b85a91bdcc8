"""A person's sign-off of a checklist item, as one entry of the environment's attestation file (a YAML list):

    - item: vulnerability-scans-completed
      by: Dana Reviewer
      date: 2026-11-20T09:30:00Z      # ISO, UTC
      version: 1.4.0                  # or `change: CHG-123`: what it covers
      reference: SEC-4411             # optional
      key: SHA256:3b1f...9c0a         # optional: the fingerprint of the attester's key...
      signature: 9mYl...Cg==          # ...and its base64 Ed25519 signature of `content()`

`append` (behind `invoke attest`) writes a signed entry; the rules an entry must meet are in
`runbook/checks/attestations.py`.
"""

import base64
import binascii
import datetime
import json
import os
import tempfile
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from runbook.config import yamlfile
from runbook.errors import CheckFailed, ConfigError
from runbook.record import signing
from runbook.times import stamp, utc_now


class Attestation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str
    by: str
    date: datetime.datetime
    version: str | None = None
    change: str | None = None
    reference: str | None = None
    key: str | None = None
    signature: str | None = None

    @field_validator("date", mode="before")
    @classmethod
    def _utc(cls, value: object) -> object:
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return datetime.datetime.combine(value, datetime.time(), datetime.timezone.utc)
        return value

    @field_validator("date")
    @classmethod
    def _aware(cls, value: datetime.datetime) -> datetime.datetime:
        if value.tzinfo is None:
            raise ValueError("give the time in UTC, e.g. 2026-11-20T09:30:00Z")
        return value.astimezone(datetime.timezone.utc)

    @model_validator(mode="after")
    def _covers(self) -> "Attestation":
        if (self.version is None) == (self.change is None):
            raise ValueError("say what it covers: give either `version` or `change` (a change ticket)")
        return self

    @property
    def covers(self) -> str:
        return f"version {self.version}" if self.version is not None else f"change {self.change}"

    def content(self) -> bytes:
        """What a signature vouches for: the entry without its signature, as canonical JSON."""
        fields = self.model_dump(mode="json", exclude={"signature"}, exclude_none=True)
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def signed_by(self, public_key: Ed25519PublicKey) -> bool:
        """True when `signature` is `public_key`'s signature of `content()`."""
        try:
            public_key.verify(base64.b64decode(self.signature or "", validate=True), self.content())
        except (binascii.Error, InvalidSignature):
            return False
        return True

    def __str__(self) -> str:
        ref = f", reference {self.reference}" if self.reference else ""
        return f"attested by {self.by} on {stamp(self.date)} for {self.covers}{ref}"


def _problems(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'entry'}: {err['msg'].removeprefix('Value error, ')}"
                     for err in e.errors())


def _entries(data: list, file: Path) -> list[Attestation]:
    found = []
    for number, entry in enumerate(data, 1):
        where = f"attestation file {file}: entry {number}" + (
            f" ({entry['item']})" if isinstance(entry, dict) and "item" in entry else "")
        if not isinstance(entry, dict):
            raise CheckFailed(f"{where}: expected `item`, `by`, `date` and `version` or `change`")
        try:
            found.append(Attestation(**entry))
        except ValidationError as e:
            raise CheckFailed(f"{where}: {_problems(e)}") from None
    return found


def read(file: Path | None) -> list[Attestation]:
    """Every entry of the attestation file (none when there is no file); `CheckFailed` naming the file
    and the entry when it is unusable."""
    if file is None or not file.exists():
        return []
    try:
        data = yamlfile.data(file)
    except yaml.YAMLError as e:
        raise CheckFailed(f"attestation file {file} is malformed YAML: {e}") from None
    except ConfigError as e:  # beyond the limits of a YAML file
        raise CheckFailed(f"attestation file {e}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise CheckFailed(f"attestation file {file} must be a list of entries, each naming its `item`")
    return _entries(data, file)


def sign(entry: Attestation, private_key_pem: bytes) -> Attestation:
    """`entry` with the fingerprint of the key and its signature."""
    key = signing.load_private_key(private_key_pem)
    named = entry.model_copy(update={"key": signing.fingerprint(signing.public_pem(key))})
    return named.model_copy(update={"signature": base64.b64encode(key.sign(named.content())).decode()})


def append(file: Path, key_file: Path, item: str, by: str, version: str | None, change: str | None) -> Attestation:
    """`invoke attest`: add a signed entry to `file`, atomically (the old file stays whole until the new one
    replaces it); `ConfigError` (exit 2) with nothing written when the key or the file is unusable."""
    if (version is None) == (change is None):
        raise ConfigError("give either --version or --change: what the attestation covers")
    try:
        pem = key_file.read_bytes()
    except OSError as e:
        raise ConfigError(f"key file {key_file}: {e.strerror}") from None
    try:
        entry = sign(Attestation(item=item, by=by, date=stamp(utc_now()), version=version, change=change), pem)
        read(file)  # never append to a file the check would refuse
    except ValidationError as e:
        raise ConfigError(_problems(e)) from None
    except ConfigError as e:
        raise ConfigError(f"key file {key_file}: {e}") from None
    except CheckFailed as e:
        raise ConfigError(str(e)) from None
    old = file.read_text() if file.exists() else ""
    text = old + ("\n" if old and not old.endswith("\n") else "")
    _replace(file, text + yaml.safe_dump([entry.model_dump(mode="json", exclude_none=True)], sort_keys=False))
    return entry


def _replace(file: Path, text: str) -> None:
    """Write `text` beside `file`, flushed, then rename it over `file`: a reader sees the old file or the new."""
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            os.fchmod(out.fileno(), file.stat().st_mode & 0o777 if file.exists() else 0o644)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, file)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

"""Manual attestations: checklist items only a person can judge, signed off in a YAML file.

    vulnerability-scans-completed:
      by: Dana Reviewer
      date: 2026-11-20
      reference: SEC-4411
"""

import datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from runbook.config import Environment, yamlfile
from runbook.errors import CheckFailed, ConfigError
from runbook.findings import NotConfigured


class Attestation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str
    date: datetime.date
    reference: str | None = None

    def __str__(self) -> str:
        ref = f", reference {self.reference}" if self.reference else ""
        return f"attested by {self.by} on {self.date.isoformat()}{ref}"


def find(file: Path | None, item: str) -> Attestation | None:
    """The attestation of `item`, None when there is none; `CheckFailed` when the file is unusable."""
    if file is None or not file.exists():
        return None
    try:
        data = yamlfile.data(file) or {}
    except yaml.YAMLError as e:
        raise CheckFailed(f"attestation file {file} is malformed YAML: {e}") from None
    except ConfigError as e:
        raise CheckFailed(f"attestation file {e}") from None
    if not isinstance(data, dict):
        raise CheckFailed(f"attestation file {file} must map item names to attestations")
    if item not in data:
        return None
    if not isinstance(data[item], dict):
        raise CheckFailed(f"attestation file {file}: {item}: expected `by`, `date` and optionally `reference`")
    try:
        return Attestation(**data[item])
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise CheckFailed(f"attestation file {file}: {item}: {problems}") from None


def attest(env: Environment, item: str) -> str:
    """The statement of the attestation of `item`; `CheckFailed` when it is missing and required,
    `NotConfigured` when it is missing and the environment does not require it."""
    rules = env.attestations
    found = find(rules.file, item)
    if found is not None:
        return f"{item}: {found}"
    missing = f"{item!r} is not attested in {rules.file or '(no attestation file configured)'}"
    if rules.required:
        raise CheckFailed(missing)
    raise NotConfigured(f"{missing}; not required in {env.name}")

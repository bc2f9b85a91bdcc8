"""Manual attestations: checklist items only a person can judge, signed off in the environment's
attestation file (see `runbook/governance/attestation.py`). An item passes on an entry that covers the
version being gated (or the run's change ticket), is no older than the environment allows and not in the
future, is signed by one of the environment's attesters where it lists them, and is not by the operator
of the run where approvals are required.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from runbook.config import Environment
from runbook.errors import CheckFailed, ConfigError
from runbook.findings import NotConfigured
from runbook.governance.attestation import Attestation, read
from runbook.record import signing
from runbook.times import stamp, utc_now

SKEW = timedelta(minutes=5)
"""How far in the future an entry's date may be: the attester's clock and this machine's may differ."""


@dataclass(frozen=True)
class Gate:
    """What an attestation must cover in this run, and who runs it."""

    version: str | None
    change: str | None
    operator: str


def attesters(env: Environment) -> dict[str, Ed25519PublicKey]:
    """The environment's attesters' public keys by fingerprint; `CheckFailed` naming a key file that is unusable."""
    keys = {}
    for path in env.attestations.attesters:
        try:
            pem = path.read_bytes()
            keys[signing.fingerprint(pem)] = signing.load_public_key(pem)
        except OSError as e:
            raise CheckFailed(f"attester key {path}: {e.strerror}") from None
        except ConfigError as e:
            raise CheckFailed(f"attester key {path}: {e}") from None
    return keys


def _coverage(entry: Attestation, gate: Gate) -> list[str]:
    if entry.version is not None and entry.version != gate.version:
        gated = f"version {gate.version} is" if gate.version else "no version is (give --version)"
        return [f"it covers version {entry.version}, but {gated} being gated"]
    if entry.change is not None and entry.change != gate.change:
        given = f"change {gate.change}" if gate.change else "no change ticket"
        return [f"it covers change {entry.change}, but this run names {given}"]
    return []


def _age(entry: Attestation, max_age_days: int | None, now: datetime) -> list[str]:
    if entry.date > now + SKEW:
        return [f"it is dated {stamp(entry.date)}, in the future (it is {stamp(now)})"]
    if max_age_days is not None and now - entry.date > timedelta(days=max_age_days):
        return [f"it is {(now - entry.date).days} days old: older than the {max_age_days} days allowed"]
    return []


def _signature(entry: Attestation, keys: dict[str, Ed25519PublicKey]) -> list[str]:
    if not keys:
        return []
    if entry.signature is None:
        return ["it is not signed, and only entries signed by one of the attesters count"]
    if entry.key is not None and entry.key not in keys:
        return [f"it is signed by key {entry.key}, which is not one of the attesters"]
    candidates = [keys[entry.key]] if entry.key is not None else keys.values()
    if not any(entry.signed_by(key) for key in candidates):
        return ["its signature does not match its content (changed after it was signed?)"]
    return []


def problems(entry: Attestation, env: Environment, gate: Gate, keys: dict[str, Ed25519PublicKey],
             now: datetime) -> list[str]:
    """Every rule `entry` breaks in this run; empty when it proves its item."""
    found = _coverage(entry, gate) + _age(entry, env.attestations.max_age(env.strict), now)
    found += _signature(entry, keys)
    if env.approval.change_ticket and entry.by.strip().lower() == gate.operator.strip().lower():
        found.append(f"self-attestation refused: {entry.by!r} is the operator of this run")
    return found


def attest(env: Environment, item: str, gate: Gate) -> str:
    """The statement of the attestation that proves `item`; `CheckFailed` naming each entry's broken rules
    (or the missing entry where required), `NotConfigured` when there is none and none is required."""
    rules = env.attestations
    entries = [e for e in read(rules.file) if e.item == item]
    if not entries:
        missing = f"{item!r} is not attested in {rules.file or '(no attestation file configured)'}"
        if rules.required:
            raise CheckFailed(missing)
        raise NotConfigured(f"{missing}; not required in {env.name}")
    keys, now, refused, elsewhere = attesters(env), utc_now(), [], True
    for entry in entries:
        broken = problems(entry, env, gate, keys, now)
        if not broken:
            return f"{item}: {entry}" + (f", signed by key {entry.key or 'of an attester'}" if keys else "")
        refused.append(f"{entry}: " + "; ".join(broken))
        elsewhere = elsewhere and broken == _coverage(entry, gate)
    why = f"{item} is not attested for this run: " + " | ".join(refused)
    if elsewhere and not (rules.required or env.strict):  # sound entries for other versions: as good as none
        raise NotConfigured(f"{why}; not required in {env.name}")
    raise CheckFailed(why)

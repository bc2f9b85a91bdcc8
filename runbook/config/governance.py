"""Who may deploy and when, how a run's record is signed, and whom a run notifies."""

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from runbook.config.base import Model, Name, Secretable, Url


class Signing(Model):
    """The Ed25519 key that signs each run's manifest, and the key `record.verify` trusts.

    The trusted key is pinned here, in the repository, never taken from a run folder: `public_key`, else
    `fingerprint`, else the public half of `private_key`.
    """

    private_key: Secretable | None = None
    """A reference to the PEM private key, e.g. `${file:/etc/runbook/prod-signing.pem}`; none: runs are not
    signed here (a verifier's copy of the environment)."""
    public_key: Path | None = None
    """The trusted PEM public key file (relative to the project folder)."""
    fingerprint: str | None = Field(None, pattern=r"^SHA256:[0-9a-f]{64}$")
    """The trusted key's fingerprint, `SHA256:<64 hex digits>` as records print it."""

    @model_validator(mode="after")
    def _some_key(self) -> "Signing":
        if not (self.private_key or self.public_key or self.fingerprint):
            raise ValueError("give `private_key`, `public_key` or `fingerprint`")
        return self


class Notification(Model):
    """Where a run says it started, succeeded, rolled back or failed (Steps 6, 16 and 17)."""

    name: Name
    kind: Literal["slack", "webhook", "statuspage"]
    url: Url
    """Slack: the incoming-webhook URL; webhook: any URL taking JSON; statuspage: the component's URL."""
    required: bool = False
    """True: a notification that cannot be delivered stops the deploy (before anything changes)."""
    timeout: float = Field(5, gt=0, le=60)
    attempts: int = Field(3, ge=1, le=10)


class Window(Model):
    """A weekly maintenance window in UTC, e.g. days [sat, sun], start "02:00", end "06:00"."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")


class Freeze(Model):
    """A period (UTC) in which no deploy may start, e.g. the end-of-year freeze."""

    start: datetime
    end: datetime
    reason: str

    @model_validator(mode="after")
    def _utc(self) -> "Freeze":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("give start and end with a timezone, e.g. 2026-12-20T00:00:00Z")
        return self


class Approval(Model):
    """Prerequisites and Step 6: who must approve, and when deploys may run."""

    change_ticket: bool = False
    """A change ticket (`--change CHG-123`) and an approver (`--approved-by NAME`) are required."""
    ticket_pattern: str = r"^[A-Z][A-Z0-9]+-\d+$"
    windows: list[Window] = []
    """Deploys only start inside one of these; none means any time."""
    freezes: list[Freeze] = []

"""What the checks look at: endpoints, smoke account, dependencies, TLS, files, thresholds, attestations, waivers."""

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from runbook.config.base import Mode, Model, Name, Secretable, Url


Journey = Literal["message_queue", "cache", "external_api"]
"""A journey of Step 11 that an app may have beyond the core ones: its scenario carries it as a tag."""


class Smoke(Model):
    """The account the smoke tests log in with (Steps 11 and 12), and what the app has to walk through."""

    username: str
    password: Secretable
    journeys: list[Journey] = []
    """The app's journeys beyond the core ones: a scenario tagged with one that is not listed is not
    applicable (e.g. `message_queue`: a job submitted through the app is processed by its worker)."""
    job_seconds: float = Field(20, gt=0, le=600)
    """message_queue: how long a submitted job may take to be done."""
    cache_ttl_seconds: int = Field(1, ge=1, le=60)
    """cache: the time to live of the value written, and so how long the check waits for it to expire."""


class Endpoints(Model):
    health: str
    status: str
    timeout: float = Field(5, gt=0, le=120)
    attempts: int = Field(20, ge=1, le=1000)
    """Checks that settle after a start are tried this many times..."""
    interval: float = Field(0.5, gt=0, le=60)
    """...this many seconds apart..."""
    settle_seconds: float = Field(30, gt=0, le=3600)
    """...and give up after this many seconds in all, however many attempts are left."""
    smoke: Smoke | None = None
    ca_file: Path | None = None
    """Trust this CA bundle, instead of the system's, for every https call to the endpoints (health,
    status, smoke, probes, the watch's prober, the performance load)."""


class Dependency(Model):
    """An external service the app relies on, checked from the machine running the runbook."""

    name: Name
    role: Literal["api", "auth", "queue", "storage", "cache", "load_balancer", "monitoring"]
    kind: Literal["http", "redis", "amqp", "storage", "haproxy", "prometheus"]
    """`haproxy`: `url` (through the load balancer) answers and every server of `load_balancer.backend` is
    UP, as its runtime API says. `prometheus`: `url` is the server's base URL; it answers when ready and every
    target it scrapes is up."""
    url: Url | None = None
    path: str | None = None
    expect_status: int = 200
    timeout: float = Field(5, gt=0, le=120)
    ca_file: Path | None = None
    """https `url`: trust this CA bundle instead of the system's."""

    @model_validator(mode="after")
    def _target(self) -> "Dependency":
        if self.kind == "storage" and not self.path:
            raise ValueError("a storage dependency needs `path` (a folder on the app hosts)")
        if self.kind != "storage" and not self.url:
            raise ValueError(f"a {self.kind} dependency needs `url`")
        return self


class TlsEndpoint(Model):
    host: str
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = None
    ca_file: Path | None = None
    """Trust this CA bundle instead of the system's (for internal or test CAs)."""


class RequiredFile(Model):
    path: str
    owner: str | None = None
    group: str | None = None
    mode: Mode
    roles: list[Name] = ["app"]


class Thresholds(Model):
    disk_free_percent: float = Field(20, ge=0, le=100)
    mounts: list[str] = ["/"]
    min_cpus: int = Field(1, ge=1)
    min_memory_mb: int = Field(512, ge=1)
    tls_min_days: int = Field(14, ge=0)


class Waiver(Model):
    """A known failing check accepted for a while: reported as waived instead of blocking, until it expires."""

    scenario: str
    """The scenario's name as the feature file says it, e.g. "Step 1 - Required resources are allocated"."""
    reason: str
    approved_by: str
    expires: date


class NotApplicable(Model):
    """A check that does not apply to this environment, and why: reported as not applicable, never run."""

    scenario: str
    """The scenario's name as the feature file says it, e.g. "Step 5 - TLS certificates are valid"."""
    reason: str = Field(min_length=1)


STRICT_MAX_AGE_DAYS = 30
"""How old an attestation may be in a strict environment that sets no `max_age_days`."""


class Attestations(Model):
    """Manual checklist items, attested by a person in a YAML file."""

    file: Path | None = None
    required: bool = True
    """True: a missing attestation fails the gate. False (local): it is reported and skipped."""
    max_age_days: int | None = Field(None, ge=1)
    """An older attestation fails (default: 30 days in a strict environment, no limit otherwise)."""
    attesters: list[Path] = []
    """PEM public keys (Ed25519) of the people who may attest: when listed, an entry needs a valid signature."""

    def max_age(self, strict: bool) -> int | None:
        return self.max_age_days or (STRICT_MAX_AGE_DAYS if strict else None)

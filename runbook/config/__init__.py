"""Environment files (`environments/<name>.yaml`) validated into typed objects before anything runs.

A bad file ends the run with exit code 2 and one message naming the file, the key, its line and what
is wrong. Secrets are references (`${NAME}`, `${file:path}`), resolved by `resolve_secrets`.
"""

import getpass
import re
import sys
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from typing import Annotated, Any, Iterator, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic import Discriminator, Tag, ValidationInfo, field_validator

from runbook import ROOT
from runbook.hosts import inventory
from runbook.config import yamlfile
from runbook.errors import ConfigError
from runbook.secrets import check_reference, expand, references

ENVIRONMENTS = ROOT / "environments"


def _mode(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
        raise ValueError('write the mode as a quoted octal string, e.g. "0600"')
    return value.zfill(4)


def _secretable(value: str) -> str:
    for ref in references(value):
        check_reference(ref)
    return value


def _no_literal_password(value: str) -> str:
    match = re.match(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:([^@\s]+)@", value, re.IGNORECASE)
    if match and not re.fullmatch(r"\$\{[^}]+\}", match.group(1)):
        raise ValueError("a password is written in the file; reference it as ${NAME} instead")
    return value


Mode = Annotated[str, BeforeValidator(_mode)]
Secretable = Annotated[str, AfterValidator(_secretable)]
"""A value that may hold secret references; read it through `Environment.secret(...)`."""
Url = Annotated[str, AfterValidator(_secretable), AfterValidator(_no_literal_password)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ssh_path(value: Path) -> Path:
    if '"' in str(value) or "\n" in str(value):
        raise ValueError("a path for ssh cannot hold a double quote or a line break")
    return value.expanduser()


SshPath = Annotated[Path, AfterValidator(_ssh_path)]


class Ssh(Model):
    """How `ssh://` hosts are reached: rendered into a private ssh client config (`runbook/ssh.py`)."""

    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
    """The login where neither the host's spec nor its inventory (`ansible_user`) names one."""
    identity_file: SshPath | None = None
    """The private key to log in with (and no other); omitted: ssh's own keys and agent."""
    known_hosts: SshPath = Field(Path("~/.ssh/known_hosts"), validate_default=True)
    strict_host_key_checking: bool = True
    """True: a host whose key is not in `known_hosts` is refused. False: a new host's key is added on first
    contact (`accept-new`). A key that differs from the known one is refused either way."""
    connect_timeout: int | None = Field(None, ge=1, le=120)
    """Every host's `connect_timeout` unless the host gives its own."""
    control_persist_seconds: int = Field(60, ge=1, le=3600)
    """How long an idle connection stays open for the next command to reuse."""


class Host(Model):
    """A host as a testinfra host spec (`local://`, `ssh://user@host:port`) with its roles."""

    name: Name
    spec: str = Field(pattern=r"^(local|ssh|paramiko|docker)://")
    roles: list[Name] = ["app"]
    connect_timeout: int = Field(5, ge=1, le=120)
    ssh: Ssh = Field(default_factory=Ssh, exclude=True)
    """The environment's `ssh` section, given to each of its hosts that has no `ssh` of its own."""
    vars: dict[str, Any] = {}
    """The host's own variables (from an inventory): placeholders in `rollout` commands and URLs."""

    @property
    def address(self) -> str:
        """The address the host is reached at: `ansible_host` when given, else the spec's host name."""
        if "ansible_host" in self.vars:
            return str(self.vars["ansible_host"])
        return urlsplit(self.spec).hostname or "127.0.0.1"


class ConfigFile(Model):
    """A configuration file the release receives: written to `shared/`, linked into the release."""

    path: str
    mode: Mode = "0640"
    env: dict[str, Secretable] | None = None
    content: Secretable | None = None
    database_url_as: str | None = None
    """An env file only: the variable that receives the database URL (e.g. DATABASE_URL)."""

    @model_validator(mode="after")
    def _one_source(self) -> "ConfigFile":
        path = PurePosixPath(self.path)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("path must be relative to shared/ and stay inside it")
        if (self.env is None) == (self.content is None):
            raise ValueError("give exactly one of `env` (KEY: value lines) or `content`")
        if self.database_url_as and self.env is None:
            raise ValueError("`database_url_as` needs an `env` file")
        return self


Command = Annotated[list[str], Field(min_length=1)]
"""An argument list run on a host from the release folder; Jinja2 placeholders such as `{{ python }}`."""


class Migrations(Model):
    """Where the app's migrations are, how to run them, and how the runbook reads their state."""

    dir: str = "migrations"
    applied_query: str = "SELECT version FROM schema_migrations"
    status_query: str = "SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 5"
    up: Command = ["{{ python }}", "bin/migrate", "up"]
    down: Command = ["{{ python }}", "bin/migrate", "down", "--to", "{{ version }}"]
    """Reverts every migration newer than `{{ version }}` (`0` for none)."""
    status: Command = ["{{ python }}", "bin/migrate", "status"]
    after: list[Command] = []
    """Commands run after a successful migration (the runbook's index update)."""


class App(Model):
    name: Name
    root: Path
    """On each app host: `releases/`, `current` and `shared/` live here."""
    package_dir: Path = Path("dist")
    python: str | None = None
    """The app's interpreter on its hosts; omitted: `python3`, or in a local environment the
    interpreter that runs the runbook (the app runs from the same virtualenv)."""
    linked_dirs: list[str] = ["uploads"]
    """Folders kept in `shared/` across releases and linked into each release."""
    requirements: str = "requirements.txt"
    config: list[ConfigFile] = []
    migrations: Migrations = Migrations()
    keep_releases: int = Field(5, ge=2, le=100)
    """Releases kept on the hosts; the current one and the rollback target are never deleted."""

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def shared(self) -> Path:
        return self.root / "shared"


class Service(Model):
    name: Name
    manager: Literal["systemd", "supervisord"]
    roles: list[Name] = ["app"]
    command: str | None = None
    """supervisord only: the program's command, a Jinja2 template (`{{ current }}`, `{{ bin }}`)."""


class Supervisor(Model):
    """Where supervisord keeps its config on hosts that use it (not its default socket)."""

    config: Path
    ctl: str = "supervisorctl"


class Database(Model):
    url: Url | None = None
    """libpq URL; omitted in the local environment, which then runs its own cluster."""
    backup_dir: Path
    backup_host: str | None = None
    """The host that runs pg_dump and keeps the backups; the first host when omitted."""
    pg_dump: str = "pg_dump"
    pg_restore: str = "pg_restore"
    dump_jobs: int = Field(1, ge=1, le=64)
    """More than 1: a directory-format dump taken with that many parallel jobs."""
    connect_timeout: int = Field(5, ge=1, le=120)


class Smoke(Model):
    """The account the smoke tests log in with (Steps 11 and 12)."""

    username: str
    password: Secretable


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


class Dependency(Model):
    """An external service the app relies on, checked from the machine running the runbook."""

    name: Name
    role: Literal["api", "auth", "queue", "storage", "cache", "load_balancer", "monitoring"]
    kind: Literal["http", "redis", "amqp", "storage"]
    url: Url | None = None
    path: str | None = None
    expect_status: int = 200
    timeout: float = Field(5, gt=0, le=120)

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


class Rollback(Model):
    restore_database: bool = False
    """Restore the pre-deploy backup instead of running down migrations (discards later writes)."""
    protected_tables: list[str] = []
    """Tables whose rows from before the deploy must all be there, unchanged, after a rollback."""


class Signing(Model):
    """The Ed25519 key that signs each run's manifest, making the record tamper-evident."""

    private_key: Secretable
    """A reference to the PEM private key, e.g. `${file:/etc/runbook/prod-signing.pem}`."""
    public_key: Path | None = None
    """The trusted PEM public key `record.verify` checks against (default: derived from the private key)."""


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


class Waiver(Model):
    """A known failing check accepted for a while: reported as waived instead of blocking, until it expires."""

    scenario: str
    """The scenario's name as the feature file says it, e.g. "Step 1 - Required resources are allocated"."""
    reason: str
    approved_by: str
    expires: date


class Attestations(Model):
    """Manual checklist items, attested by a person in a YAML file."""

    file: Path | None = None
    required: bool = True
    """True: a missing attestation fails the gate. False (local): it is reported and skipped."""


class Local(Model):
    """The embedded local environment's private services, all under `state_dir`."""

    state_dir: Path = Path(".local")
    postgres_port: int | None = Field(None, ge=1024, le=65535)
    """Port of the private PostgreSQL cluster; none when `database.url` is configured."""


MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]


class ProberSource(Model):
    """The runbook sends requests itself and measures each one's status and latency (the default)."""

    kind: Literal["prober"] = "prober"
    urls: list[Url] = []
    """URLs requested in turn; none: the environment's health and status endpoints."""
    requests_per_sample: int = Field(10, ge=1, le=1000)


class PrometheusTextSource(Model):
    """The app's own `/metrics` page (Prometheus text exposition), scraped every interval."""

    kind: Literal["prometheus_text"]
    url: Url | None = None
    """None: `/metrics` on the host of the status endpoint."""
    requests: MetricName = "http_requests_total"
    """A counter of answered requests labelled by status."""
    status_label: str = "status"
    latency: MetricName = "http_request_duration_seconds"
    """A histogram of request durations in seconds."""


class PrometheusQuerySource(Model):
    """A Prometheus server asked two PromQL expressions every interval (`/api/v1/query`)."""

    kind: Literal["prometheus_query"]
    url: Url
    """The server's base URL, e.g. `http://prometheus:9090`."""
    error_rate: str = Field(min_length=1)
    """PromQL giving the share of failed requests, 0 to 1."""
    p95_seconds: str = Field(min_length=1)
    """PromQL giving the 95th percentile latency in seconds."""


def _source_kind(value: Any) -> str:
    return value.get("kind", "prober") if isinstance(value, dict) else value.kind


MetricsSource = Annotated[
    Annotated[ProberSource, Tag("prober")]
    | Annotated[PrometheusTextSource, Tag("prometheus_text")]
    | Annotated[PrometheusQuerySource, Tag("prometheus_query")],
    Discriminator(_source_kind),
]
"""One of the three, chosen by `kind`; without one, the prober."""


class MissingData(Model):
    """What a sample without data does: `ignore` skips it (it neither holds nor breaks a trigger's window),
    `fail` counts it as a failed measurement (it breaks every window). Either way, more than
    `max_missing` missing samples in a row fire the "missing data" trigger."""

    rule: Literal["fail", "ignore"] = "ignore"
    max_missing: int = Field(2, ge=0, le=1000)


class Watch(Model):
    """Runbook Step 14: watch the release after it is verified and roll back on a sustained trigger.

    The defaults are the runbook's production figures; a local environment sets seconds.
    """

    source: MetricsSource = ProberSource()
    interval_seconds: float = Field(15, gt=0, le=3600)
    """Between two samples."""
    baseline_seconds: float = Field(300, gt=0, le=86400)
    """Measured before the deploy: the baseline the release is compared with."""
    bake_seconds: float = Field(900, gt=0, le=86400)
    """How long the release is watched after its verification."""
    error_rate: float = Field(0.05, gt=0, lt=1)
    """Rollback when the share of failed requests stays above this..."""
    error_window_seconds: float = Field(300, gt=0, le=86400)
    """...for this long (also the window of database and critical smoke check failures)."""
    latency_factor: float = Field(2.0, gt=1, le=100)
    """Rollback when p95 latency stays above this many times the baseline's..."""
    latency_window_seconds: float = Field(600, gt=0, le=86400)
    """...for this long."""
    missing_data: MissingData = MissingData()
    timeout: float = Field(5, gt=0, le=120)
    """Of each request the watch sends."""

    @model_validator(mode="after")
    def _windows(self) -> "Watch":
        for key in ("baseline_seconds", "error_window_seconds", "latency_window_seconds"):
            if getattr(self, key) < self.interval_seconds:
                raise ValueError(f"{key} ({getattr(self, key):g}) is shorter than interval_seconds "
                                 f"({self.interval_seconds:g}): it must span at least one interval")
        needed = max(self.error_window_seconds, self.latency_window_seconds) + self.interval_seconds
        if self.bake_seconds < needed:
            raise ValueError(f"bake_seconds ({self.bake_seconds:g}) must be at least the longest window plus one "
                             f"interval ({needed:g}), or a trigger could never fire")
        return self


class Performance(Model):
    """Runbook Steps 11 and 20: a short load against the environment's own endpoints once the release is
    verified, bounded both in requests and in seconds, with limits on latency, errors and the app's use
    of its host."""

    paths: list[Annotated[str, Field(pattern=r"^/")]] = Field(["/health", "/api/status"], min_length=1)
    """Paths on the origin of `endpoints.health`: the load never leaves the environment's own app."""
    requests: int = Field(200, ge=1, le=100_000)
    seconds: float = Field(10, gt=0, le=600)
    concurrency: int = Field(4, ge=1, le=64)
    latency_factor: float = Field(2.0, gt=1, le=100)
    """p95 latency under load may be at most this many times the baseline's p95."""
    max_error_rate: float = Field(0.01, ge=0, lt=1)
    max_memory_mb: int | None = Field(None, ge=1)
    """Resident memory of the service's processes on each host, all processes together."""
    max_cpu_percent: float | None = Field(None, gt=0, le=10_000)
    """CPU of the service's processes on each host during the load (100 = one core busy)."""
    service: Name | None = None
    """Whose processes are measured; the first service when omitted."""


Batch = int | Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?%$")]


class Rollout(Model):
    """How a release reaches the app hosts.

    `maintenance` is the runbook's order: stop, switch, migrate, start (the app does not answer
    meanwhile). `rolling` migrates first (only backward-compatible migrations, see the README), then
    switches and gracefully reloads the app, so the old workers serve until the new ones are up.
    Hosts go in batches as Ansible's `serial` (a count, a percentage, or a list of them; the last
    entry repeats), and the rollout stops when a batch's failed hosts exceed `max_fail_percentage`.
    """

    strategy: Literal["maintenance", "rolling"] = "maintenance"
    serial: Batch | list[Batch] = "100%"
    max_fail_percentage: float = Field(0, ge=0, le=100)
    host_url: str | None = None
    """Each app host's own address for its health check during the rollout, a Jinja2 template such as
    `http://{{ address }}:8000` (`name`, `address` and the host's inventory variables); the paths of
    `endpoints.health` and `endpoints.status` are appended. Omitted: `endpoints` themselves."""
    drain: Command | None = None
    """Run on the machine running the runbook to take a host out of the load balancer before its
    switch (the same placeholders as `host_url`)."""
    restore: Command | None = None
    """...and to put it back once it answers healthy on the new release."""

    @field_validator("serial")
    @classmethod
    def _above_zero(cls, serial: Batch | list[Batch]) -> Batch | list[Batch]:
        for size in serial if isinstance(serial, list) else [serial]:
            if (float(size[:-1]) if isinstance(size, str) else size) <= 0:
                raise ValueError(f"{size!r} is not a batch size above 0")
        if serial == []:
            raise ValueError("give at least one batch size")
        return serial


class Environment(Model):
    name: Name
    description: str = ""
    inventory: Path | None = None
    """An Ansible inventory (INI or YAML) naming the hosts, instead of `hosts`; see `runbook/inventory.py`."""
    ssh: Ssh = Ssh()
    hosts: list[Host] = Field(default_factory=list, validate_default=True)
    app: App
    services: list[Service] = []
    supervisor: Supervisor | None = None
    database: Database
    endpoints: Endpoints
    dependencies: list[Dependency] = []
    tls: list[TlsEndpoint] = []
    files: list[RequiredFile] = []
    thresholds: Thresholds = Thresholds()
    attestations: Attestations = Attestations()
    waivers: list[Waiver] = []
    rollback: Rollback = Rollback()
    signing: Signing | None = None
    notifications: list[Notification] = []
    approval: Approval = Approval()
    local: Local | None = None
    watch: Watch = Watch()
    performance: Performance | None = None
    rollout: Rollout = Rollout()
    source: Path = Field(ROOT, exclude=True)

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any, info: ValidationInfo) -> Any:
        """The hosts given inline or read from the inventory, each with the environment's ssh settings."""
        if "inventory" not in info.data or "ssh" not in info.data:
            return value  # the key that is wrong is reported by itself
        path, ssh = info.data["inventory"], info.data["ssh"]
        defaults = {"ssh": ssh} | ({"connect_timeout": ssh.connect_timeout} if ssh.connect_timeout else {})
        if path is not None:
            if value:
                raise ValueError("give the hosts either inline or as `inventory`, not both")
            found = inventory.read(path, ssh.user or getpass.getuser())
            return [_inventory_host(path, defaults | host) for host in found]
        if not value:
            raise ValueError("give at least one host, inline or as `inventory: <an Ansible inventory file>`")
        if not isinstance(value, list):
            return value
        return [defaults | host if isinstance(host, dict) else host for host in value]

    @model_validator(mode="after")
    def _consistent(self) -> "Environment":
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"hosts: names must be unique, got {names}")
        if not self.hosts_with("app"):
            raise ValueError("hosts: at least one host needs the `app` role")
        if self.database.url is None and (self.local is None or self.local.postgres_port is None):
            raise ValueError("database.url is required unless `local.postgres_port` runs a local cluster")
        if self.database.backup_host and self.database.backup_host not in names:
            raise ValueError(f"database.backup_host {self.database.backup_host!r} is not one of the hosts {names}")
        if any(s.manager == "supervisord" for s in self.services) and not (self.supervisor or self.local):
            raise ValueError("services managed by supervisord need a `supervisor` section")
        measured = self.performance and self.performance.service
        if measured and measured not in {s.name for s in self.services}:
            raise ValueError(f"performance.service {measured!r} is not one of the services "
                             f"{[s.name for s in self.services]}")
        if self.performance and not self.services:
            raise ValueError("performance needs a service whose processes it measures")
        return self

    @property
    def python(self) -> str:
        if self.app.python:
            return self.app.python
        return sys.executable if self.local else "python3"

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def hosts_with_any(self, roles: list[str]) -> list[Host]:
        return [h for h in self.hosts if set(roles) & set(h.roles)]

    @property
    def backup_host(self) -> Host:
        return next(h for h in self.hosts if h.name == (self.database.backup_host or self.hosts[0].name))

    def secret_values(self) -> Iterator[tuple[str, str]]:
        """Every (key, template) in this environment that holds a secret reference."""
        yield from _walk(self.model_dump(), ())


def _walk(data: Any, path: tuple) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _walk(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk(value, path + (i,))
    elif isinstance(data, str) and references(data):
        yield _key(path), data


def _key(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _inventory_host(path: Path, data: dict[str, Any]) -> Host:
    """A host of the inventory; `ConfigError` naming the inventory and the host when it does not fit."""
    try:
        return Host(**data)
    except ValidationError as e:
        problems = "; ".join(f"{_key(tuple(item['loc']))}: {item['msg']}" for item in e.errors())
        raise ConfigError(f"{path}: host {data['name']}: {problems}") from None


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
    ("files", "*", "path"),
    ("dependencies", "*", "path"),
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

"""The app and what it runs on: its releases and config files, migrations, services and database, and the
local environment's own services."""

from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field, model_validator

from runbook.config.base import Command, Mode, Model, Name, Secretable, Url


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


class Drill(Model):
    """Step 3's restore drill: every backup is restored into a scratch database on the same server and
    compared with the database as the dump saw it."""

    depth: Literal["full", "schema"] = "full"
    """full: every table's data; schema: the schema and the protected tables' data alone (a database too
    large to restore on every deploy)."""
    full_below_mb: int | None = Field(None, ge=1)
    """With `depth: schema`: a database smaller than this many MB is still drilled in full."""
    rehearse: bool = True
    """A deploy's pending migrations run up, down and up again on the drill's copy; one that fails, or whose
    down part leaves the schema otherwise than it found it, stops the deploy before anything changes. Off:
    the migrations run untested (the backup phase says so); needed for a `transaction:false` migration."""
    exclusive_lock_max_mb: int = Field(100, ge=0)
    """Under `rollout.strategy: rolling`, a rehearsed migration that takes ACCESS EXCLUSIVE on a table larger
    than this many MB (on the copy) is refused: the serving release would stall on that table while it runs."""

    @model_validator(mode="after")
    def _below_needs_schema(self) -> "Drill":
        if self.full_below_mb is not None and self.depth == "full":
            raise ValueError("`full_below_mb` applies only with `depth: schema` (a full drill is full at every size)")
        return self

    def depth_for(self, size_bytes: int) -> str:
        """The depth a database of `size_bytes` is drilled at."""
        if self.depth == "schema" and self.full_below_mb is not None and size_bytes < self.full_below_mb * 2**20:
            return "full"
        return self.depth


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
    drill: Drill = Drill()
    """How each backup's restore drill restores it."""


class LocalHaproxy(Model):
    """The local stack's HAProxy, in front of the servers of `load_balancer`: TLS terminated on `port`
    (all addresses) with the certificate of the local CA; its Prometheus exporter (`/metrics`) and stats
    page (`/stats`) on `exporter_port`, loopback only; its runtime API on `load_balancer.socket`."""

    port: int = Field(ge=1, le=65535)
    exporter_port: int = Field(ge=1, le=65535)
    check_interval_ms: int = Field(1000, ge=100, le=60_000)
    """How often HAProxy checks each server's `/health` (2 failures: DOWN, 2 successes: UP)."""


class LocalPrometheus(Model):
    """A Prometheus server of the local stack (Debian's `/usr/bin/prometheus`), serving `monitoring.url`."""

    scrape_seconds: float = Field(1, gt=0, le=60)
    """Between two scrapes, and two evaluations of the alert rules: short, for local's seconds-long windows."""
    retention: str = Field("1d", pattern=r"^[0-9]+[smhdwy]$")


class StackService(Model):
    """A small service of the local stack that the demo app depends on, on 127.0.0.1:`port`."""

    port: int = Field(ge=1024, le=65535)


class AuthService(StackService):
    """The local stack's authentication service: the one account it accepts, and the secret the app
    presents to it (both secret references, written to a 0600 file, never on a command line)."""

    username: str
    password: Secretable
    secret: Secretable


class Local(Model):
    """The embedded local environment's private services, all under `state_dir`."""

    state_dir: Path = Path(".local")
    postgres_port: int | None = Field(None, ge=1024, le=65535)
    """Port of the private PostgreSQL cluster; none when `database.url` is configured."""
    haproxy: LocalHaproxy | None = None
    """A load balancer with TLS in front of the app's instances (needs a `load_balancer` section)."""
    prometheus: LocalPrometheus | None = None
    """Run the Prometheus of `monitoring` under supervisord, scraping `monitoring.jobs`."""
    api: StackService | None = None
    """The external API the demo calls (`GET /health`, `GET /v1/rates`)."""
    auth: AuthService | None = None
    """The authentication service the demo's logins go through (`GET /health`, `POST /v1/verify`)."""

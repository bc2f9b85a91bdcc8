"""The demo app on a test fleet: an Ansible inventory of the fleet's hosts, an environment file that
reaches them over ssh with verified host keys, and a supervisord of its own on each host, in that
host's namespaces, ready for the runbook to deploy the app into `COMMON/app`.

    with fleets.fleet(3, tmp_path / "fleet", forward=fleets.MACHINE_SERVICES) as hosts, \\
            apps.fresh_database() as database, fleet_app(hosts, tmp_path, database) as app:
        packages.build(tmp_path, "1.0.0")
        cli.invoke(tmp_path / "reports", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        app.status(hosts[0])["version"]   # "1.0.0", answered by host1 at 10.213.<n>.2:8000

Every host runs the app as supervisord's program `web`: gunicorn from `COMMON/app/current` on port
8000 of all its addresses. The app and the runbook reach the machine's PostgreSQL, Redis and RabbitMQ
at the fleet's shared address (the fleet must forward `MACHINE_SERVICES`).
"""

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
import yaml

from . import apps
from .fleet import Fleet, FleetHost
from .netns import COMMON

PORT = 8000
APP_ROOT = COMMON / "app"
SUPERVISOR = COMMON / "supervisor"
SUPERVISORD_CONF = SUPERVISOR / "supervisord.conf"
BACKUPS = COMMON / "backups"
VENV_BIN = Path(sys.executable).parent
"""The project's virtualenv: the same path on every host (they share this machine's files outside COMMON)."""

SUPERVISORD = f"""\
; supervisord of a test fleet's host: its own socket, logs and app under {COMMON}
[unix_http_server]
file={SUPERVISOR}/supervisor.sock
chmod=0700

[supervisord]
logfile={SUPERVISOR}/supervisord.log
pidfile={SUPERVISOR}/supervisord.pid
childlogdir={SUPERVISOR}/logs
directory={COMMON}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{SUPERVISOR}/supervisor.sock

[program:web]
command={VENV_BIN}/gunicorn --no-control-socket --chdir {APP_ROOT}/current --bind 0.0.0.0:{PORT} {apps.GUNICORN} --timeout 30 app:application
directory={COMMON}
autostart=false
autorestart=true
startsecs=1
stopwaitsecs=15
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={SUPERVISOR}/logs/web.log
"""


def inventory(hosts: Fleet) -> str:
    """An Ansible INI inventory: every host in [app] and [web], the first in [migrate]."""
    lines = ["# the test fleet: roles are the groups", "[app]"]
    lines += [f"{h.name} ansible_host={h.address} ansible_user=root" for h in hosts]
    lines += ["", "[web]", *(h.name for h in hosts), "", "[migrate]", hosts[0].name, "",
              "[all:vars]", "ansible_port=22", "", "[app:vars]", f"app_port={PORT}", "lb_pool=fleet-test", ""]
    return "\n".join(lines)


def environment(hosts: Fleet, folder: Path, database_url: str, known_hosts: Path | None = None) -> dict:
    """The environment file's data: the fleet from `folder/inventory.ini`, over ssh with the fleet's keys."""
    shared = hosts.shared_url
    return {
        "name": "fleet",
        "description": f"a test fleet of {len(hosts)} hosts in network namespaces, reached over ssh",
        "strict": False,  # like local: its TLS, load balancer and attestations are not there to check
        "inventory": str(folder / "inventory.ini"),
        "ssh": {
            "user": "root",
            "identity_file": str(hosts.client_key),
            "known_hosts": str(known_hosts or hosts.known_hosts),
            "strict_host_key_checking": True,
            "connect_timeout": 5,
            "control_persist_seconds": 60,
        },
        "app": {
            "name": "demo",
            "root": str(APP_ROOT),
            "package_dir": str(folder / "dist"),
            "python": sys.executable,
            "config": [{
                "path": ".env", "mode": "0600", "database_url_as": "DATABASE_URL",
                "env": {"APP_SECRET_KEY": "${RUNBOOK_TEST_SECRET}", "APP_ADMIN_PASSWORD": "${RUNBOOK_TEST_SECRET}"},
            }],
            "migrations": {"after": [["{{ python }}", "bin/analyze"]]},
        },
        "services": [{"name": "web", "manager": "supervisord"}],
        "supervisor": {"config": str(SUPERVISORD_CONF), "ctl": str(VENV_BIN / "supervisorctl")},
        "database": {"url": shared(database_url), "backup_dir": str(BACKUPS)},
        "endpoints": apps.endpoints(f"http://{hosts[0].address}:{PORT}"),
        "dependencies": [
            {"name": "cache", "role": "cache", "kind": "redis", "url": shared("redis://127.0.0.1:6379/0")},
            {"name": "queue", "role": "queue", "kind": "amqp", "url": shared("amqp://127.0.0.1:5672/%2F")},
            {"name": "uploads", "role": "storage", "kind": "storage", "path": str(APP_ROOT / "shared")},
        ],
        "files": [{"path": str(BACKUPS), "mode": "0700"},
                  {"path": str(SUPERVISORD_CONF), "owner": "root", "mode": "0600"}],
        "thresholds": {"mounts": [str(COMMON)], "disk_free_percent": 20},
        "attestations": {"required": False},
        "rollback": {"protected_tables": ["users", "items", "files"]},
        "watch": apps.WATCH,
        "rollout": {"host_url": f"http://{{{{ address }}}}:{PORT}"},
    }


@dataclass
class FleetApp:
    """The demo app on the fleet, as a client and an operator see it."""

    hosts: Fleet
    folder: Path
    env_file: Path
    inventory: Path
    database: str
    """The database URL as this machine reaches it (127.0.0.1); the hosts use the shared address."""

    def data(self) -> dict:
        return yaml.safe_load(self.env_file.read_text())

    def change(self, changes: dict) -> None:
        """Merge `changes` into the environment file (a None value removes a key)."""
        self.env_file.write_text(yaml.safe_dump(apps.merge(self.data(), changes), sort_keys=False))

    def base(self, host: FleetHost) -> str:
        return f"http://{host.address}:{PORT}"

    def status(self, host: FleetHost) -> dict:
        return requests.get(f"{self.base(host)}/api/status", timeout=5).json()

    def health(self, host: FleetHost) -> int:
        return requests.get(f"{self.base(host)}/health", timeout=5).status_code

    def served_version(self, host: FleetHost) -> str | None:
        """The version the host's app reports, None when nothing answers."""
        try:
            return self.status(host).get("version")
        except (requests.RequestException, ValueError):
            return None

    def current(self, host: FleetHost) -> str | None:
        """The release `current` points at on the host (read through the host's own folder)."""
        link = host.root / "app" / "current"
        return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None

    def releases(self, host: FleetHost) -> list[str]:
        folder = host.root / "app" / "releases"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def supervisorctl(self, host: FleetHost, *args: str) -> subprocess.CompletedProcess:
        return self.hosts.ssh(host, " ".join([str(VENV_BIN / "supervisorctl"), "-c", str(SUPERVISORD_CONF), *args]))

    def schema(self) -> str | None:
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            found = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] if found else None

    def rows(self) -> list[tuple]:
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            return conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()


def _provision(hosts: Fleet, host: FleetHost) -> None:
    """The host's supervisord config, written into its own folder, and supervisord started on the host."""
    (host.root / "supervisor" / "logs").mkdir(parents=True, exist_ok=True)
    conf = host.root / "supervisor" / "supervisord.conf"
    conf.write_text(SUPERVISORD)
    conf.chmod(0o600)
    (host.root / "backups").mkdir(exist_ok=True)
    (host.root / "backups").chmod(0o700)
    # The app's shared folder (its uploads: a storage dependency) exists before the first release, as on
    # a host prepared for the app.
    (host.root / "app" / "shared").mkdir(parents=True, exist_ok=True)
    started = hosts.ssh(host, f"{VENV_BIN / 'supervisord'} -c {SUPERVISORD_CONF}")
    if started.returncode != 0:
        raise RuntimeError(f"supervisord on {host.name} did not start: {started.stderr.strip()}")
    ctl = f"{VENV_BIN / 'supervisorctl'} -c {SUPERVISORD_CONF}"
    # Started when its socket answers: one command that waits on the host, so one round trip.
    waited = hosts.ssh(host, f"for i in $(seq 100); do {ctl} pid | grep -qx '[0-9]*' && exit 0; sleep 0.1; done; exit 1")
    if waited.returncode != 0:
        log = (host.root / "supervisor" / "supervisord.log")
        raise RuntimeError(f"supervisord on {host.name} did not answer: "
                           f"{log.read_text()[-500:] if log.exists() else 'no log'}")


def _shutdown(hosts: Fleet, host: FleetHost) -> None:
    """Stop the host's supervisord and the app with it (a host made unreachable is left to the fleet's
    teardown, which ends every process of its namespace)."""
    with contextlib.suppress(Exception):
        hosts.ssh(host, f"{VENV_BIN / 'supervisorctl'} -c {SUPERVISORD_CONF} shutdown", timeout=20)


@contextlib.contextmanager
def fleet_app(hosts: Fleet, folder: Path, database_url: str, known_hosts: Path | None = None,
              changes: dict | None = None):
    """The inventory and environment file in `folder` (`inventory.ini`, `fleet-env.yaml`), each host's
    supervisord started; stopped on exit. `database_url` is the machine's (127.0.0.1), rewritten to the
    fleet's shared address for the hosts."""
    if hosts.shared_address is None or 5432 not in hosts.forwarded:
        raise RuntimeError("the fleet must forward the machine's services: fleet(..., forward=MACHINE_SERVICES)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dist").mkdir(exist_ok=True)
    inventory_path = folder / "inventory.ini"
    inventory_path.write_text(inventory(hosts))
    env_file = folder / "fleet-env.yaml"
    data = apps.merge(environment(hosts, folder, database_url, known_hosts), changes or {})
    env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    started = []
    try:
        for host in hosts:
            _provision(hosts, host)
            started.append(host)
        yield FleetApp(hosts, folder, env_file, inventory_path, database_url)
    finally:
        for host in started:
            _shutdown(hosts, host)

"""A staging-shaped environment for the tests: three systemd hosts (`tests/systemd_hosts.py`) from an
Ansible inventory, the demo app on each as the systemd unit `web`, and Debian's HAProxy on this machine
(the runner) balancing the three as the environment's `load_balancer`. The app and the runbook reach the
machine's PostgreSQL, Redis and RabbitMQ at the hosts' shared address.

    with systemd_fleet(tmp_path) as fleet:             # booted once for a module
        app = fleet.app(tmp_path / "test", database)   # this test's env file, after a reset of the hosts
        cli.invoke(reports, "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        app.through_balancer("/api/status")

The unit is `Type=notify` gunicorn serving `COMMON/app/current` from the project's venv (bind-mounted
read-only). Before it starts or reloads a release it imports the release's app (`ExecStartPre`, the first
`ExecReload`), as `nginx -t` guards nginx's reload: a release that cannot load is refused by systemd and
the unit keeps serving (reload) or ends `failed` (start).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from . import apps, fleet_app, systemd_hosts
from .fleet import MACHINE_SERVICES, Fleet, FleetHost
from .netns import COMMON

UNIT = "web"
PORT = fleet_app.PORT
HAPROXY = "/usr/sbin/haproxy"
BACKEND = "fleet"
UPLOADS = Path("/srv/runbook-uploads")
"""The app's uploads, one folder of this machine's that every host shares (as staging's /mnt/uploads):
behind a load balancer a file uploaded through one host is downloaded through another."""
HUNG_SYSTEMCTL = Path("/usr/local/sbin/systemctl")
"""Where `hang_systemctl` puts a systemctl that never answers: before /usr/bin on the hosts' PATH."""


def missing() -> str | None:
    """None when this machine can run the fleet, else what it lacks (tests/prerequisites.require)."""
    if not os.access(HAPROXY, os.X_OK):
        return f"{HAPROXY} is not installed (Debian package haproxy)"
    return systemd_hosts.missing()


def unit_text(python: str = sys.executable) -> str:
    gunicorn = Path(python).parent / "gunicorn"
    return "\n".join([
        "[Unit]", "Description=the demo app (a runbook systemd fleet test)", "", "[Service]", "Type=notify",
        f"WorkingDirectory={fleet_app.APP_ROOT}/current",
        f'ExecStartPre={python} -c "import app"',
        f"ExecStart={gunicorn} --no-control-socket --bind 0.0.0.0:{PORT} {apps.GUNICORN} --timeout 30 app:application",
        f'ExecReload={python} -c "import app"',
        "ExecReload=/bin/kill -HUP $MAINPID",
        "", "[Install]", "WantedBy=multi-user.target", ""])


def haproxy_text(socket: Path, port: int, hosts: Fleet) -> str:
    """HAProxy in front of the hosts' app: plain HTTP on 127.0.0.1:`port`, health checks every 0.5 s."""
    servers = "\n".join(f"    server {h.name} {h.address}:{PORT} check" for h in hosts)
    return f"""\
global
    stats socket {socket} mode 600 level admin
    stats timeout 30s

defaults
    mode http
    option redispatch
    retries 2
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend app
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 500 fall 2 rise 2
{servers}
"""


def environment(hosts: Fleet, folder: Path, database_url: str, socket: Path, port: int) -> dict:
    """The fleet's environment file (`tests.fleet_app.environment`) with staging's shape: the service
    under systemd, HAProxy's runtime API as the load balancer, the endpoints through HAProxy."""
    front = f"http://127.0.0.1:{port}"
    data = fleet_app.environment(hosts, folder, database_url)
    return apps.merge(data, {
        "name": "systemd-fleet",
        "description": f"{len(hosts)} systemd hosts (nspawn) reached over ssh, behind HAProxy on the runner",
        "services": [{"name": UNIT, "manager": "systemd"}],
        "supervisor": None,
        "files": [{"path": str(fleet_app.BACKUPS), "mode": "0700"},
                  {"path": f"/etc/systemd/system/{UNIT}.service", "owner": "root", "mode": "0644"}],
        "endpoints": {"health": f"{front}/health", "status": f"{front}/api/status"},
        "app": {"config": [{**data["app"]["config"][0],
                            "env": {**data["app"]["config"][0]["env"], "APP_UPLOAD_DIR": str(UPLOADS)}}]},
        "dependencies": [d if d["role"] != "storage" else {**d, "path": str(UPLOADS)} for d in data["dependencies"]],
        "load_balancer": {"kind": "haproxy", "socket": str(socket), "backend": BACKEND, "servers": [
            {"name": h.name, "service": UNIT, "host": h.name, "address": f"{h.address}:{PORT}"} for h in hosts]},
    })


@dataclass
class SystemdApp:
    """The demo app on the systemd fleet for one test, as a client and an operator see it."""

    hosts: Fleet
    env_file: Path
    front: str
    """HAProxy's frontend: what a client asks."""

    def change(self, changes: dict) -> None:
        """Merge `changes` into the environment file (a None value removes a key)."""
        data = yaml.safe_load(self.env_file.read_text())
        self.env_file.write_text(yaml.safe_dump(apps.merge(data, changes), sort_keys=False))

    def through_balancer(self, path: str) -> requests.Response:
        return requests.get(f"{self.front}{path}", timeout=5)

    def served_version(self, host: FleetHost) -> str | None:
        """The version the host's app reports on its own address, None when nothing answers."""
        try:
            return requests.get(f"http://{host.address}:{PORT}/api/status", timeout=5).json().get("version")
        except (requests.RequestException, ValueError):
            return None

    def current(self, host: FleetHost) -> str | None:
        """The release `current` points at on the host (read through its root's overlay)."""
        link = common(host) / "app" / "current"
        return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None

    def systemctl(self, host: FleetHost, *args: str) -> str:
        return self.hosts.ssh(host, shlex.join(["systemctl", *args])).stdout.strip()


def common(host: FleetHost) -> Path:
    """The host's COMMON as this machine sees it: inside the host's root."""
    return host.merged / COMMON.relative_to("/")


def _ssh(hosts: Fleet, host: FleetHost, command: str) -> str:
    done = hosts.ssh(host, command)
    if done.returncode != 0:
        raise RuntimeError(f"{host.name}: `{command}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class SystemdFleet:
    """The booted hosts with the unit installed and HAProxy in front of them, for a module's tests."""

    def __init__(self, hosts: Fleet, folder: Path) -> None:
        self.hosts, self.folder = hosts, folder
        self.socket = folder / "haproxy" / "admin.sock"
        self.port = apps.free_port()
        self.haproxy: subprocess.Popen | None = None
        self.uploads = folder / "uploads"

    def start(self) -> None:
        for host in self.hosts:
            (host.merged / "etc" / "systemd" / "system" / f"{UNIT}.service").write_text(unit_text())
            _ssh(self.hosts, host, "systemctl daemon-reload")
        config = self.folder / "haproxy" / "haproxy.cfg"
        config.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        config.write_text(haproxy_text(self.socket, self.port, self.hosts))
        subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], check=True, timeout=30, capture_output=True)
        with open(self.folder / "haproxy" / "haproxy.log", "wb") as log:
            self.haproxy = subprocess.Popen([HAPROXY, "-W", "-db", "-f", str(config)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.haproxy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy did not start: see {self.folder / 'haproxy' / 'haproxy.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.haproxy.pid, 9)
                self.haproxy.wait(5)

    def reset(self) -> None:
        """Each host as a test expects it: the unit stopped and not failed, no release, no backup, the app's
        shared folder there, systemctl answering."""
        for entry in self.uploads.iterdir():  # the folder itself is what the hosts have mounted
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for host in self.hosts:
            (host.merged / HUNG_SYSTEMCTL.relative_to("/")).unlink(missing_ok=True)
            _ssh(self.hosts, host, f"systemctl stop {UNIT}; systemctl reset-failed {UNIT}; "
                                   f"rm -rf {COMMON}/app {COMMON}/backups; mkdir -p {COMMON}/app/shared; "
                                   f"mkdir -m 0700 {COMMON}/backups")

    def app(self, folder: Path, database_url: str) -> SystemdApp:
        """The hosts reset, and this test's inventory and environment file in `folder`."""
        self.reset()
        (folder / "dist").mkdir(parents=True, exist_ok=True)
        (folder / "inventory.ini").write_text(fleet_app.inventory(self.hosts))
        env_file = folder / "systemd-env.yaml"
        data = environment(self.hosts, folder, database_url, self.socket, self.port)
        env_file.write_text(yaml.safe_dump(data, sort_keys=False))
        return SystemdApp(self.hosts, env_file, f"http://127.0.0.1:{self.port}")


def hang_systemctl(host: FleetHost) -> None:
    """Give the host a `systemctl` earlier on root's PATH than the real one that never answers (until
    `SystemdFleet.reset`)."""
    path = host.merged / HUNG_SYSTEMCTL.relative_to("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n# a systemctl that hangs, as one waiting on a stuck systemd does\nexec sleep infinity\n")
    path.chmod(0o755)


@contextlib.contextmanager
def systemd_fleet(folder: Path, count: int = 3):
    """`count` booted systemd hosts with the unit `web` installed and HAProxy in front of them; all of it
    stopped and removed on exit."""
    (folder / "uploads").mkdir(parents=True)
    with systemd_hosts.systemd_hosts(count, folder / "hosts", forward=MACHINE_SERVICES,
                                     binds=systemd_hosts.project_binds(),
                                     shares=((folder / "uploads", UPLOADS),)) as hosts:
        made = SystemdFleet(hosts, folder)
        try:
            made.start()
            yield made
        finally:
            made.stop()
            for host in hosts:  # a systemctl left hanging would keep the host's shutdown waiting
                (host.merged / HUNG_SYSTEMCTL.relative_to("/")).unlink(missing_ok=True)

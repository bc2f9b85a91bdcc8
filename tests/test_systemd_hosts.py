"""The systemd test hosts are real: systemd as PID 1 on a Debian root of their own (never the machine's),
sshd reached over a veth link, units driven with systemctl and seen by testinfra, journald's journal, and
nothing left behind."""

import fcntl
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests
import tenacity
import testinfra
import yaml

from runbook import config
from runbook.errors import ActionFailed
from runbook.release import services

from . import fleet_app, prerequisites, rootfs, systemd_hosts as systemd
from .apps import free_port
from .fleet import MACHINE_SERVICES
from .netns import namespaces

UNIT = "rbdemo"


@pytest.fixture(scope="module")
def can_boot():
    prerequisites.require(systemd.missing())


@pytest.fixture(scope="module")
def hosts(can_boot, tmp_path_factory):
    with systemd.systemd_hosts(1, tmp_path_factory.mktemp("systemd"), binds=systemd.project_binds(),
                               forward=MACHINE_SERVICES) as made:
        yield made


def ssh(hosts, command: str) -> subprocess.CompletedProcess:
    return hosts.ssh(hosts[0], command)


@pytest.fixture
def refusal_folder():
    folder = rootfs.STATE / f"refusal-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()


def test_the_machines_own_root_is_refused_also_behind_a_link_under_the_state_folder(refusal_folder):
    with pytest.raises(rootfs.Refused, match="own root filesystem"):
        rootfs.check_bootable(Path("/"))
    (refusal_folder / "merged").symlink_to("/")
    host = systemd.SystemdHost(name="host1", namespace="unused", address="", local_address="", link="",
                               root=refusal_folder / "merged", folder=refusal_folder)
    with pytest.raises(rootfs.Refused, match="own root filesystem"):
        systemd.boot_directory(host)
    assert host.sshd is None, "nspawn was started on /"


def test_a_root_outside_the_state_folder_or_not_made_here_is_refused(tmp_path, refusal_folder):
    (tmp_path / rootfs.STAMP).write_text(rootfs.stamp_text())
    with pytest.raises(rootfs.Refused, match="not under the state folder"):
        rootfs.check_bootable(tmp_path)
    with pytest.raises(rootfs.Refused, match="not a root made by debootstrap"):
        rootfs.check_bootable(refusal_folder)


def test_the_cached_root_is_stamped_with_its_packages_and_reused(can_boot):
    root = rootfs.cached()
    stamp = root / rootfs.STAMP
    made = stamp.stat().st_mtime_ns
    assert stamp.read_text() == rootfs.stamp_text()
    assert "openssh-server" in stamp.read_text() and (root / "lib" / "systemd" / "systemd").exists()
    assert rootfs.cached() == root and stamp.stat().st_mtime_ns == made, "the cached root was made again"


def test_a_worker_that_waited_for_the_build_lock_uses_the_root_the_other_worker_made(tmp_path):
    cache = tmp_path / "cache" / "debian-root"
    cache.mkdir(parents=True)
    lock_file = tmp_path / "cache" / "debian-root.lock"
    found: list[Path] = []
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test is the worker building the root
        waiter = threading.Thread(target=lambda: found.append(rootfs.cached(cache)), daemon=True)
        waiter.start()
        inode = f":{os.stat(lock_file).st_ino} "

        def blocked() -> None:
            assert any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())

        tenacity.Retrying(stop=tenacity.stop_after_delay(10), wait=tenacity.wait_fixed(0.05), reraise=True)(blocked)
        (cache / rootfs.STAMP).write_text(rootfs.stamp_text())
    waiter.join(10)
    assert found == [cache]
    assert not (tmp_path / "cache" / "debian-root.building").exists(), "the waiting worker ran debootstrap"


def test_a_booted_host_runs_systemd_as_pid_1_and_answers_ssh_under_its_own_name(hosts):
    assert ssh(hosts, "cat /proc/1/comm").stdout.strip() == "systemd"
    assert ssh(hosts, "hostname").stdout.strip() == "host1"
    assert ssh(hosts, "systemctl is-system-running").stdout.strip() in ("running", "degraded")


def test_the_hosts_journal_is_kept_by_journald(hosts):
    assert ssh(hosts, "systemctl is-active systemd-journald").stdout.strip() == "active"
    lines = ssh(hosts, "journalctl -n 5 --no-pager -q").stdout.splitlines()
    assert 1 <= len(lines) <= 5, lines


def test_a_unit_is_started_and_stopped_by_systemctl_and_seen_by_testinfra_and_the_journal(hosts):
    port = free_port()
    unit = "\n".join(["[Unit]", "Description=runbook test unit", "[Service]", "Type=simple",
                      f"ExecStart=/usr/bin/python3 -u -m http.server {port} --directory /srv", "[Install]",
                      "WantedBy=multi-user.target", ""])
    written = ssh(hosts, f"mkdir -p /srv && cat > /etc/systemd/system/{UNIT}.service <<'EOF'\n{unit}EOF\n"
                         f"systemctl daemon-reload && systemctl enable {UNIT} && systemctl start {UNIT}")
    assert written.returncode == 0, written.stderr
    service = testinfra.get_host(hosts[0].spec, ssh_config=str(hosts.ssh_config)).service(UNIT)
    assert service.is_running and service.is_enabled
    answer = tenacity.Retrying(stop=tenacity.stop_after_delay(10), wait=tenacity.wait_fixed(0.2), reraise=True)(
        requests.get, f"http://{hosts[0].address}:{port}/", timeout=5)
    assert answer.status_code == 200
    journal = ssh(hosts, f"journalctl -u {UNIT} -n 50 --no-pager -q").stdout
    assert '"GET / HTTP/1.1" 200' in journal, journal
    assert ssh(hosts, f"systemctl stop {UNIT}").returncode == 0
    assert not service.is_running
    status = ssh(hosts, f"systemctl status {UNIT} --no-pager")
    assert status.returncode == 3 and "inactive (dead)" in status.stdout, status.stdout


def install(hosts, name: str, unit: str) -> None:
    """Write a unit on the host and have systemd read it."""
    written = ssh(hosts, f"cat > /etc/systemd/system/{name}.service <<'EOF'\n{unit}EOF\nsystemctl daemon-reload")
    assert written.returncode == 0, written.stderr


def gunicorn_unit(port: int, start: str | None = None) -> str:
    """The demo's external API under gunicorn from the runner's (read-only) venv; `start`: another command."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    services = systemd.ROOT / "demo" / "services"
    command = start or f"{gunicorn} --chdir {services} --bind 0.0.0.0:{port} --workers 1 extapi:application"
    return "\n".join(["[Unit]", "Description=the demo's external API under gunicorn", "[Service]", "Type=notify",
                      f"ExecStart={command}", "ExecReload=/bin/kill -HUP $MAINPID", ""])


def workers(hosts, main: str) -> list[str]:
    return ssh(hosts, f"pgrep -P {main}").stdout.split()


def main_pid(hosts, name: str) -> str:
    return ssh(hosts, f"systemctl show -p MainPID --value {name}").stdout.strip()


def wait_for_new_workers(hosts, main: str, old: list[str]) -> None:
    def replaced() -> None:
        now = workers(hosts, main)
        assert now and now != old, now

    tenacity.Retrying(stop=tenacity.stop_after_delay(15), wait=tenacity.wait_fixed(0.2), reraise=True)(replaced)


def test_the_demo_services_gunicorn_runs_from_the_read_only_venv_as_a_notify_unit_reloaded_by_hup(hosts):
    port = free_port()
    install(hosts, "rbapi", gunicorn_unit(port))
    started = ssh(hosts, "systemctl start rbapi")
    assert started.returncode == 0, started.stderr + ssh(hosts, "journalctl -u rbapi -n 20 --no-pager").stdout
    assert ssh(hosts, f"touch {sys.prefix}/written-by-a-host").returncode != 0, "the venv is writable from a host"
    url = f"http://{hosts[0].address}:{port}/health"
    assert requests.get(url, timeout=5).json() == {"status": "ok"}
    main, old = main_pid(hosts, "rbapi"), workers(hosts, main_pid(hosts, "rbapi"))
    assert ssh(hosts, "systemctl reload rbapi").returncode == 0
    wait_for_new_workers(hosts, main, old)
    assert main_pid(hosts, "rbapi") == main
    assert requests.get(url, timeout=5).json() == {"status": "ok"}
    assert ssh(hosts, "systemctl stop rbapi").returncode == 0


@pytest.fixture
def systemd_env(hosts, tmp_path):
    """An environment file whose one host is the systemd host, reached over ssh, its service `web` under
    systemd."""
    (tmp_path / "inventory.ini").write_text(fleet_app.inventory(hosts))
    data = fleet_app.environment(hosts, tmp_path, "postgresql://postgres@127.0.0.1:5432/unused")
    data["services"] = [{"name": "web", "manager": "systemd"}]
    (tmp_path / "systemd.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    env = config.load_environment(str(tmp_path / "systemd.yaml"))
    return env, env.hosts[0], env.services[0]


def test_the_runbooks_systemd_manager_starts_reloads_and_stops_a_unit_on_a_systemd_host(hosts, systemd_env):
    env, host, web = systemd_env
    install(hosts, "web", gunicorn_unit(free_port()))
    assert not services.running(env, host, web).ok
    services.control(env, host, web, "start")
    assert services.running(env, host, web).detail == "systemd unit web is running"
    main, old = main_pid(hosts, "web"), workers(hosts, main_pid(hosts, "web"))
    services.reload(env, host, web)
    wait_for_new_workers(hosts, main, old)
    assert main_pid(hosts, "web") == main
    services.control(env, host, web, "stop")
    assert not services.running(env, host, web).ok


def test_a_unit_that_fails_to_start_is_an_action_failed_naming_systemds_words(hosts, systemd_env):
    env, host, web = systemd_env
    install(hosts, "web", gunicorn_unit(0, start="/bin/sh -c 'echo this release is broken >&2; exit 3'"))
    with pytest.raises(ActionFailed, match="start web failed: Job for web.service failed"):
        services.control(env, host, web, "start")
    assert ssh(hosts, "systemctl is-failed web").stdout.strip() == "failed"
    assert "this release is broken" in ssh(hosts, "journalctl -u web -n 50 --no-pager -q").stdout


def test_a_host_runs_in_cgroups_of_its_own_and_is_torn_down_with_no_process_or_cgroup_left(can_boot, tmp_path):
    with systemd.systemd_hosts(1, tmp_path) as made:
        host = made[0]
        assert ssh(made, "touch /etc/written-by-a-host").returncode == 0
        inside = systemd.processes_in(host.pid_namespace)
        groups = Path(f"/proc/{host.sshd.pid}/cgroup").read_text()
        assert groups.count(f"/runbook-systemd-hosts/{host.namespace}") == len(systemd.own_cgroups(host)) > 0, groups
        assert ssh(made, "systemctl is-active ssh").stdout.strip() == "active" and len(inside) > 3, inside
        nspawn = host.sshd
    assert nspawn.returncode is not None
    assert systemd.processes_in(host.pid_namespace) == []
    assert host.namespace not in namespaces()
    assert not host.state.exists()
    assert not any(group.exists() for group in systemd.own_cgroups(host)), "its cgroups are left"
    assert not os.path.exists(rootfs.CACHE / "etc" / "written-by-a-host")

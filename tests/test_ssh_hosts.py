"""The runbook's own connections to real ssh hosts (tests/fleet.py): hosts from an inventory, reached
through the environment's ssh settings with host keys verified and one connection reused; packages sent
over rsync, files written over ssh."""

import hashlib
import os
import re
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from runbook import config
from runbook.hosts import connection, survey, ssh
from runbook.errors import ActionFailed, RunbookError

from . import fleet as fleets, prerequisites
from .netns import COMMON

TIMEOUT = 30


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    prerequisites.require(fleets.can_make_namespaces())
    with fleets.fleet(3, tmp_path_factory.mktemp("fleet")) as made:
        yield made


@pytest.fixture
def environment(fleet, make_env, tmp_path):
    """An environment whose hosts are the fleet's, named by an INI inventory; `ssh` changes merged in."""
    inventory = tmp_path / "fleet.ini"
    inventory.write_text(
        "[web]\n" + "".join(f"{h.name} ansible_host={h.address}\n" for h in fleet[:2])
        + f"[db]\n{fleet[2].name} ansible_host={fleet[2].address}\n"
        + "[app:children]\nweb\n"
    )
    opened = []

    def make(**changes) -> config.Environment:
        settings = {"user": "root", "identity_file": str(fleet.client_key), "known_hosts": str(fleet.known_hosts),
                    "connect_timeout": 3} | changes
        env = config.load_environment(str(make_env({"hosts": None, "inventory": str(inventory), "ssh": settings},
                                                   name=f"fleet-{len(opened)}.yaml")))
        opened.append(env)
        return env

    yield make
    for env in opened:  # this test's connections end with it
        for host in env.hosts:
            close(host)


def named(env: config.Environment, name: str) -> config.Host:
    (host,) = [h for h in env.hosts if h.name == name]
    return host


def ssh_control(host: config.Host, *args: str) -> subprocess.CompletedProcess:
    """The plain ssh client with the runbook's config for `host` (as testinfra calls it)."""
    argv = ["ssh", "-F", str(ssh.config_file(host.ssh)), "-o", "User=root", "-o", "Port=22", *args, host.address]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def control_socket(host: config.Host) -> Path:
    """Where ssh keeps the runbook's connection to `host` (`ssh -G` resolves the ControlPath)."""
    shown = ssh_control(host, "-G").stdout
    return Path(re.search(r"^controlpath (.+)$", shown, re.MULTILINE).group(1))


def master_pid(host: config.Host) -> int | None:
    check = ssh_control(host, "-O", "check")
    found = re.search(r"pid=(\d+)", check.stderr)
    return int(found.group(1)) if check.returncode == 0 and found else None


def close(host: config.Host) -> None:
    if master_pid(host) is not None:
        ssh_control(host, "-O", "exit")


def test_inventory_hosts_run_commands_over_ssh_with_their_roles(fleet, environment):
    env = environment()
    # In Ansible's inventory order: the groups `all` holds (db, app), each one's hosts.
    listed = [(fleet[2], ["db"]), (fleet[0], ["app", "web"]), (fleet[1], ["app", "web"])]
    assert [(h.name, h.roles, h.spec) for h in env.hosts] == [
        (h.name, roles, f"ssh://root@{h.address}:22") for h, roles in listed
    ]
    assert [h.name for h in env.hosts_with("web")] == ["host1", "host2"]
    for host in env.hosts:
        assert connection.run(host, "hostname").stdout.strip() == host.name
        assert survey.reachability(host).ok
        # The session came in over the host's own link.
        client = connection.script(host, 'echo "$SSH_CONNECTION"').stdout.split()
        assert client[0] == fleet.by_name(host.name).local_address
        assert connection.connect(host).backend.NAME == "ssh"


def test_the_ssh_config_is_private_and_checks_host_keys(fleet, environment):
    env = environment()
    path = ssh.config_file(env.ssh)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(ssh.SOCKETS.stat().st_mode) == 0o700
    text = path.read_text()
    for line in ("BatchMode yes", "StrictHostKeyChecking yes", f'UserKnownHostsFile "{fleet.known_hosts}"',
                 f'IdentityFile "{fleet.client_key}"', "IdentitiesOnly yes", "ConnectTimeout 3", "ControlMaster auto",
                 "ControlPersist 60"):
        assert f"\n  {line}\n" in text
    assert path.name == hashlib.sha256(text.encode()).hexdigest()[:16] + ".conf"
    # Other settings, another file, and connections of their own.
    other = ssh.config_file(environment(strict_host_key_checking=False).ssh)
    assert other != path and "StrictHostKeyChecking accept-new" in other.read_text()
    accepting = environment(strict_host_key_checking=False)
    assert control_socket(named(accepting, "host1")) != control_socket(named(env, "host1"))


def test_the_connection_is_reused(fleet, environment):
    host = named(environment(), "host3")
    close(host)
    socket = control_socket(host)
    assert len(str(socket)) + len(".XXXXXXXXXXXXXXXX") < 104, "a unix socket path must stay short"
    assert not socket.exists() and master_pid(host) is None

    first = connection.script(host, 'echo "$SSH_CONNECTION"').stdout
    assert socket.is_socket()
    master = master_pid(host)
    assert master is not None
    # Same client port: the next command, and rsync's, go over the first one's TCP connection.
    assert connection.script(host, 'echo "$SSH_CONNECTION"').stdout == first
    assert master_pid(host) == master


def test_a_host_key_mismatch_is_refused_and_nothing_runs(fleet, environment, tmp_path):
    host1, host2 = fleet[0], fleet[1]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True,
                   capture_output=True, timeout=TIMEOUT)
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    lines = fleet.known_hosts.read_text().splitlines()
    known = tmp_path / "known_hosts"
    known.write_text("".join((f"{host2.address} {kind} {key}" if line.startswith(f"{host2.address} ") else line) + "\n"
                             for line in lines))
    marker = COMMON / f"ran-{uuid.uuid4().hex[:8]}"

    for strict in (True, False):  # accept-new takes unknown hosts, never a changed key
        env = environment(known_hosts=str(known), strict_host_key_checking=strict)
        target = named(env, host2.name)
        finding = survey.reachability(target)
        assert not finding.ok and finding.subject == "host host2"
        assert "Host key verification failed" in finding.detail
        with pytest.raises(RuntimeError, match="Host key verification failed"):
            connection.run(target, "touch", str(marker))
        with pytest.raises(RunbookError, match="host host2: cannot write .*Host key verification failed"):
            connection.put(target, str(marker), b"secret", 0o600)
        assert not (host2.root / marker.name).exists()
        assert master_pid(target) is None
        # The same file's right key for host1 still lets it in.
        assert connection.run(named(env, host1.name), "hostname").stdout.strip() == "host1"
    assert known.read_text().count(host2.address) == 1 and key in known.read_text()


def test_an_unknown_host_is_refused_unless_new_keys_are_accepted(fleet, environment, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    strict = named(environment(known_hosts=str(known)), "host1")
    assert "Host key verification failed" in survey.reachability(strict).detail
    assert known.read_text() == ""
    accepting = named(environment(known_hosts=str(known), strict_host_key_checking=False), "host1")
    assert survey.reachability(accepting).ok
    assert known.read_text().startswith(f"{fleet[0].address} ssh-ed25519 ")


def test_an_unreachable_host_fails_within_the_connect_timeout_naming_it(fleet, environment):
    env = environment(connect_timeout=2)
    gone = named(env, "host2")
    assert survey.reachability(gone).ok
    fleet.unreachable(fleet[1])
    try:
        close(gone)
        started = time.monotonic()
        finding = survey.reachability(gone)
        took = time.monotonic() - started
    finally:
        fleet.reachable(fleet[1])
    assert not finding.ok and finding.subject == "host host2"
    assert f"does not answer over {gone.spec} within 2 s" in finding.detail
    assert re.search(r"Connection timed out|No route to host", finding.detail), finding.detail
    assert took < 2 + 3, f"gave up after {took:.1f} s"
    assert survey.reachability(named(env, "host1")).ok


def test_a_package_reaches_a_host_over_rsync_identical(fleet, environment, tmp_path):
    host = named(environment(), "host1")
    package = tmp_path / "demo-1.0.0.tar.gz"
    package.write_bytes(os.urandom(3 << 20))
    destination = COMMON / f"app-{uuid.uuid4().hex[:8]}" / "shared" / "packages" / package.name
    first = connection.script(host, 'echo "$SSH_CONNECTION"').stdout
    connection.copy(host, package, str(destination))
    arrived = fleet[0].root / destination.relative_to(COMMON)
    assert hashlib.sha256(arrived.read_bytes()).hexdigest() == hashlib.sha256(package.read_bytes()).hexdigest()
    remote = connection.run(host, "sha256sum", str(destination)).stdout.split()[0]
    assert remote == hashlib.sha256(package.read_bytes()).hexdigest()
    assert not (fleet[1].root / destination.relative_to(COMMON)).exists()
    assert connection.script(host, 'echo "$SSH_CONNECTION"').stdout == first
    # Copied again (a retried deploy): still whole, nothing left beside it.
    connection.copy(host, package, str(destination))
    assert sorted(p.name for p in arrived.parent.iterdir()) == [package.name]

    with pytest.raises(ActionFailed, match=f"host host1: copying {tmp_path / 'absent.tar.gz'} to .* failed: "):
        connection.copy(host, tmp_path / "absent.tar.gz", str(destination))


def test_put_writes_a_file_with_its_mode_over_ssh(fleet, environment, secret):
    host = named(environment(), "host2")
    path = COMMON / f"app-{uuid.uuid4().hex[:8]}.env"
    content = f"APP_SECRET_KEY={secret}\n".encode()
    connection.put(host, str(path), content, 0o640)
    written = fleet[1].root / path.name
    assert written.read_bytes() == content and stat.S_IMODE(written.stat().st_mode) == 0o640
    connection.put(host, str(path), b"replaced\n", 0o600)
    assert written.read_bytes() == b"replaced\n" and stat.S_IMODE(written.stat().st_mode) == 0o600
    assert sorted(p.name for p in written.parent.iterdir() if p.name.startswith(path.name)) == [path.name]

    with pytest.raises(RunbookError, match=f"host host2: cannot write {COMMON}/missing/x.env: .*Directory nonexistent"):
        connection.put(host, f"{COMMON}/missing/x.env", content, 0o600)

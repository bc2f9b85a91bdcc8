"""The fleet's test hosts are real: sshd in network namespaces, reached over ssh by testinfra with host
keys verified, connections reused, each host with its own files under the common path."""

import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import testinfra

from . import fleet as fleets, netns, prerequisites
from .netns import COMMON

TIMEOUT = 30


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                          env=netns.ENV)


def remote(hosts: fleets.Fleet, host: fleets.FleetHost, ssh_config=None):
    return testinfra.get_host(host.spec, ssh_config=str(ssh_config or hosts.ssh_config))


@pytest.fixture(scope="module")
def can_make_namespaces():
    prerequisites.require(fleets.can_make_namespaces())


@pytest.fixture(scope="module")
def hosts(can_make_namespaces, tmp_path_factory):
    """Three hosts for the tests that leave them as they found them."""
    with fleets.fleet(3, tmp_path_factory.mktemp("fleet")) as made:
        yield made


def connect_time(host: fleets.FleetHost) -> float:
    """The best of five TCP handshakes with the host's sshd, in seconds (one round trip)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        with socket.create_connection((host.address, 22), timeout=5):
            best = min(best, time.perf_counter() - start)
    return best


def test_testinfra_runs_commands_on_each_host_over_ssh(hosts):
    assert len(hosts) == 3
    for host in hosts:
        machine = remote(hosts, host)
        assert machine.backend.NAME == "ssh"
        assert machine.check_output("hostname") == host.name
        assert machine.check_output("uname -s") == "Linux"
        assert f"inet {host.address}/30" in machine.check_output("ip -o -4 addr show dev eth0")
        # The session came in over the host's own link, from the root namespace's end of it.
        client, _, server, port = machine.check_output("echo $SSH_CONNECTION").split()
        assert (client, server, port) == (host.local_address, host.address, "22")
        assert machine.user().name == "root"
    assert len({host.address for host in hosts}) == len({host.namespace for host in hosts}) == 3


def test_each_host_sees_only_its_own_files_under_the_common_path(hosts):
    marker = COMMON / f"marker-{uuid.uuid4().hex[:8]}"
    one, two = remote(hosts, hosts[0]), remote(hosts, hosts[1])
    assert one.file(str(COMMON)).is_directory and two.file(str(COMMON)).is_directory
    try:
        one.check_output(f"echo written on host1 > {marker}")
        assert one.file(str(marker)).exists
        assert one.file(str(marker)).content_string == "written on host1\n"
        assert not two.file(str(marker)).exists
        # On disk it is in host1's own folder, not in host2's nor at the common path of this machine.
        assert (hosts[0].root / marker.name).read_text() == "written on host1\n"
        assert not (hosts[1].root / marker.name).exists()
        assert not marker.exists()
    finally:
        (hosts[0].root / marker.name).unlink(missing_ok=True)


def test_a_host_key_mismatch_is_refused_and_nothing_runs(hosts, tmp_path):
    host1, host2 = hosts[0], hosts[1]
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor"))
    impostor = (tmp_path / "impostor.pub").read_text().split()
    known = [line if not line.startswith(f"{host2.address} ") else f"{host2.address} {impostor[0]} {impostor[1]}"
             for line in hosts.known_hosts.read_text().splitlines()]
    (tmp_path / "known_hosts").write_text("\n".join(known) + "\n")
    # No ControlPath: a master already connected to host2 would skip the host key check.
    config = tmp_path / "ssh_config"
    config.write_text(hosts.config_text(known_hosts=tmp_path / "known_hosts", control_path="none"))
    marker = COMMON / f"ran-{uuid.uuid4().hex[:8]}"

    with pytest.raises(RuntimeError) as refused:
        remote(hosts, host2, config).run(f"touch {marker}")
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in str(refused.value)
    assert "Host key verification failed" in str(refused.value)
    assert not (host2.root / marker.name).exists()

    plain = hosts.ssh(host2, f"touch {marker}", config=config)
    assert plain.returncode == 255 and "Host key verification failed" in plain.stderr
    assert not (host2.root / marker.name).exists()
    # The same file's right key for host1 still lets it in.
    assert remote(hosts, host1, config).check_output("hostname") == "host1"

    # A host that known_hosts does not name is refused too: nothing is added to it on the way.
    (tmp_path / "known_hosts").write_text("".join(line + "\n" for line in known if not line.startswith(host2.address)))
    unknown = hosts.ssh(host2, f"touch {marker}", config=config)
    assert unknown.returncode == 255 and "Host key verification failed" in unknown.stderr
    assert not (host2.root / marker.name).exists()
    assert host2.address not in (tmp_path / "known_hosts").read_text()


def test_only_the_fleets_client_key_logs_in(hosts, tmp_path):
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger"))
    config = tmp_path / "ssh_config"
    config.write_text(hosts.config_text(control_path="none").replace(str(hosts.client_key), str(tmp_path / "stranger")))
    refused = hosts.ssh(hosts[0], "true", config=config)
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr


def test_connections_are_reused(hosts):
    host = hosts[2]
    hosts.close_connection(host)
    control = hosts.control_socket(host)
    assert len(str(control)) < 100, "a unix socket path must stay short"
    assert not control.exists() and hosts.master_pid(host) is None

    machine = remote(hosts, host)
    first = machine.check_output("echo $SSH_CONNECTION")
    assert control.is_socket()
    master = hosts.master_pid(host)
    assert master is not None

    second = remote(hosts, host).check_output("echo $SSH_CONNECTION")
    # Same client port: the second command went over the first one's TCP connection.
    assert second == first
    assert hosts.master_pid(host) == master
    assert hosts.ssh(host, "echo $SSH_CONNECTION").stdout.strip() == first


def test_latency_delays_what_each_host_sends(can_make_namespaces, tmp_path, record_property):
    with fleets.fleet(3, tmp_path, latency_ms=100) as delayed:
        with_delay = {host.name: connect_time(host) for host in delayed}
        assert delayed.latency_method in ("netem", "nfqueue")
        for host in delayed:
            qdisc = run("ip", "netns", "exec", host.namespace, "tc", "qdisc", "show", "dev", "eth0").stdout
            if delayed.latency_method == "netem":
                assert re.search(r"qdisc netem .*delay 100(\.0)?ms", qdisc), qdisc
            else:
                # This kernel has no netem: the host's outgoing packets wait in an NFQUEUE delayer.
                rules = run("ip", "netns", "exec", host.namespace, "iptables", "-w", "-S", "OUTPUT").stdout
                assert "-A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass" in rules
                assert str(host.delayer.pid) in run("ip", "netns", "pids", host.namespace).stdout.split()
                assert host.delayer.poll() is None
            assert remote(delayed, host).check_output("hostname") == host.name

        delayed.set_latency(0)
        without = {host.name: connect_time(host) for host in delayed}
        for host in delayed:
            assert "netem" not in run("ip", "netns", "exec", host.namespace, "tc", "qdisc", "show").stdout
            if delayed.latency_method == "nfqueue":
                assert "NFQUEUE" not in run("ip", "netns", "exec", host.namespace, "iptables", "-w", "-S").stdout
        # Measured, not asserted: a machine's timing is not a test's business.
        for name in with_delay:
            record_property(f"{name}_handshake_ms", f"{with_delay[name] * 1000:.1f} with 100 ms latency, "
                                                    f"{without[name] * 1000:.1f} without")
            print(f"{name}: TCP handshake {with_delay[name] * 1000:.1f} ms with latency 100 ms, "
                  f"{without[name] * 1000:.1f} ms without ({delayed.latency_method})")


def test_an_unreachable_host_fails_to_connect(can_make_namespaces, tmp_path):
    with fleets.fleet(3, tmp_path) as hosts:
        gone = hosts[1]
        assert remote(hosts, gone).check_output("hostname") == gone.name
        hosts.unreachable(gone)
        assert hosts.master_pid(gone) is None

        failed = hosts.ssh(gone, "true")
        assert failed.returncode == 255
        assert re.search(r"No route to host|timed out", failed.stderr), failed.stderr
        with pytest.raises(RuntimeError):
            remote(hosts, gone).run("true")
        # The root namespace still routes the host's address over its own link, never elsewhere.
        assert f"dev {gone.link} " in run("ip", "route", "get", gone.address).stdout
        for host in (hosts[0], hosts[2]):
            assert remote(hosts, host).check_output("hostname") == host.name

        hosts.reachable(gone)
        assert remote(hosts, gone).check_output("hostname") == gone.name


def test_no_host_has_a_default_route(hosts):
    for host in hosts:
        assert run("ip", "-n", host.namespace, "route", "show", "default").stdout == ""
        assert run("ip", "-n", host.namespace, "-6", "route", "show", "default").stdout == ""
        routes = run("ip", "-n", host.namespace, "-4", "route", "show").stdout.splitlines()
        assert [r.split()[:3] for r in routes] == [[f"{host.address.rsplit('.', 1)[0]}.0/30", "dev", "eth0"]]
        # From the host itself nothing but its own link is reachable (a route lookup sends nothing).
        lookup = remote(hosts, host).run("ip route get 198.51.100.1")
        assert lookup.rc != 0 and "unreachable" in lookup.stderr


def test_teardown_removes_namespaces_links_processes_and_sockets(can_make_namespaces, tmp_path):
    with fleets.fleet(2, tmp_path) as hosts:
        for host in hosts:
            remote(hosts, host).check_output("true")
        made = [(host.namespace, host.link, host.sshd.pid, hosts.master_pid(host), hosts.control_socket(host))
                for host in hosts]
        runtime = hosts.runtime
        assert all(master for _, _, _, master, _ in made)
    namespaces = run("ip", "netns", "list").stdout
    for namespace, link, sshd, master, control in made:
        assert namespace not in namespaces
        assert run("ip", "link", "show", "dev", link).returncode != 0
        for pid in (sshd, master):
            assert not os.path.exists(f"/proc/{pid}"), f"process {pid} still runs"
        assert not control.exists()
    assert not runtime.exists()
    assert str(COMMON) not in Path("/proc/self/mountinfo").read_text()


def test_teardown_happens_when_the_body_fails(can_make_namespaces, tmp_path):
    with pytest.raises(ZeroDivisionError), fleets.fleet(1, tmp_path) as hosts:
        namespace, link = hosts[0].namespace, hosts[0].link
        assert namespace in run("ip", "netns", "list").stdout
        1 / 0
    assert namespace not in run("ip", "netns", "list").stdout
    assert run("ip", "link", "show", "dev", link).returncode != 0

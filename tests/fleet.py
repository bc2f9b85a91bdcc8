"""Real remote hosts for the tests: one network namespace per host, a veth link into it, and an sshd of
its own on port 22 of the host's address, reached over ssh with verified host keys.

    with fleet(3, tmp_path) as hosts:
        for host in hosts:
            testinfra.get_host(host.spec, ssh_config=str(hosts.ssh_config)).check_output("hostname")

Each host has its own address (10.213.<n>.2/30, the root namespace's end is 10.213.<n>.1), no default
route, its own hostname, and its own files under one common path (`COMMON`, bind-mounted from
`folder/<host>/srv` in a private mount namespace), so an environment file can name the same app root
for every host while each keeps its own files. Only traffic between the root namespace and the
namespaces made here is ever sent. Everything is torn down on exit, also when the body fails. The links,
addresses and commands are `netns`'s; `Fleet` is also the frame of the systemd hosts (`systemd_hosts`).

The machine's own services (PostgreSQL, Redis, RabbitMQ on 127.0.0.1) can be reached from every host at
one shared address (`fleet(3, folder, forward=MACHINE_SERVICES)`): an address of the 10.213.0.0/24 range
added to the root namespace's `lo` as a /32 (so it also works from the root namespace), a route to it in
each host's namespace over the host's own link, and a forwarder (`forwarder.py`) that relays each
connection to that address's port to the same port on 127.0.0.1, nowhere else.

Latency: `tc ... netem delay` on each host's link where the kernel has netem; where it has not (the
project's machines: no sch_netem), each host's outgoing packets are queued with iptables' NFQUEUE to a
small delayer in its namespace (`netdelay.py`) that lets each one go after MS ms.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests import netdelay, netns, sshd

MACHINE_SERVICES = (5432, 6379, 5672)
"""The machine's PostgreSQL, Redis and RabbitMQ: the ports `forward=` usually names."""


def can_make_namespaces() -> str | None:
    """None when this machine can run a fleet, else why not (tests skip with it)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "hostname", "ssh", "ssh-keygen"):
        if not shutil.which(tool, path=netns.PATH):
            return f"{tool} is not installed"
    if not os.access(sshd.SSHD, os.X_OK):
        return f"{sshd.SSHD} is not installed (Debian package openssh-server)"
    probe = f"rbfprobe{secrets.token_hex(3)}"
    try:
        made = netns.run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"cannot make a network namespace: {made.stderr.strip()}"
        isolated = netns.inside(probe, "unshare", "--mount", "--uts", "--propagation", "private", "true", check=False)
        if isolated.returncode != 0:
            return f"cannot make a mount namespace: {isolated.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as error:
        return f"cannot make a network namespace: {error}"
    finally:
        netns.run("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class FleetHost:
    name: str
    """host1, host2, ...: also its hostname."""
    namespace: str
    address: str
    """Its address inside its namespace, reached from the root namespace."""
    local_address: str
    """The root namespace's end of its link."""
    link: str
    """The root namespace's end of its veth pair (the host's end is eth0 in its namespace)."""
    root: Path
    """Its own folder, seen on the host as COMMON."""
    folder: Path
    """Its sshd's config, host key, pid file and log."""
    sshd: subprocess.Popen | None = field(default=None, repr=False)
    delayer: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def spec(self) -> str:
        """Its testinfra host spec."""
        return f"ssh://root@{self.address}"

    @property
    def host_key(self) -> Path:
        return self.folder / "ssh_host_ed25519_key"

    @property
    def known_line(self) -> str:
        """Its line in the client's known_hosts: its address and its host key."""
        kind, key = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"{self.address} {kind} {key}"

    def __str__(self) -> str:
        return self.name


class Fleet:
    """The hosts of a fleet (iterable, indexable) and what a client needs to reach them."""

    def __init__(self, folder: Path, runtime: Path) -> None:
        self.folder = folder
        self.runtime = runtime
        """A short folder of its own under /tmp for the ControlMaster sockets, removed on exit."""
        self.hosts: list[FleetHost] = []
        self.latency_ms = 0
        self.latency_method: str | None = None
        """How the delay is made once a latency was set: "netem" or "nfqueue"."""
        self.shared_address: str | None = None
        """Where every host (and the root namespace) reaches the forwarded services; None without `forward`."""
        self.forwarded: tuple[int, ...] = ()
        self.forwarder: subprocess.Popen | None = None

    def reserve(self, count: int, prefix: str, kind: type[FleetHost], root: Callable[[str, str], Path],
                forward: bool) -> None:
        """Under the fleets' lock: `count` hosts of `kind` (`root(token, name)` their files), each with a
        namespace and link of its own named `<prefix><token>...`, and the shared address when `forward`."""
        with netns.reserved():
            taken, token = netns.namespaces(), secrets.token_hex(3)
            while any(n.startswith(f"{prefix}{token}-") for n in taken):
                token = secrets.token_hex(3)
            for index, octet in enumerate(netns.free_subnets(count), start=1):
                name = f"host{index}"
                host = kind(name=name, namespace=f"{prefix}{token}-{index}", address=f"{netns.SUBNET}.{octet}.2",
                            local_address=f"{netns.SUBNET}.{octet}.1", link=f"{prefix}{token}h{index}",
                            root=root(token, name), folder=self.folder / name)
                self.hosts.append(host)
                netns.make_link(host)
            if forward:
                self.shared_address = netns.add_shared_address()

    def admit(self, forward: tuple[int, ...]) -> None:
        """Let clients in: the hosts' keys in known_hosts, the ssh config; with `forward`, each host's route to
        the shared address and the forwarder relaying those ports."""
        self.known_hosts.write_text("".join(f"{h.known_line}\n" for h in self.hosts))
        self.ssh_config.write_text(self.config_text())
        if forward:
            self.forwarded = tuple(forward)
            for host in self.hosts:
                netns.route_shared(host, self.shared_address)
            self.forwarder = netns.start_program("forwarder.py", [self.shared_address, *map(str, forward)],
                                                 self.folder / "forwarder.log", "the forwarder")

    def shared_url(self, url: str) -> str:
        """`url` with 127.0.0.1 (or localhost) replaced by the shared address, for the hosts to use."""
        if self.shared_address is None:
            raise RuntimeError("this fleet forwards no service: make it with forward=...")
        return re.sub(r"(?<=[@/])(127\.0\.0\.1|localhost)(?=[:/]|$)", self.shared_address, url, count=1)

    # The client's side.
    @property
    def ssh_config(self) -> Path:
        return self.folder / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def control_path(self) -> str:
        return str(self.runtime / "cm-%C")

    def config_text(self, known_hosts: Path | None = None, control_path: str | None = None) -> str:
        """The client's ssh config; another known_hosts or ControlPath ("none": no reuse) for tests."""
        lines = [
            "# ssh config for a test fleet: only these hosts, keys verified against known_hosts.",
            *(f"Host {h.name}\n  HostName {h.address}" for h in self.hosts),
            "Host *",
            "  User root",
            "  Port 22",
            f'  IdentityFile "{self.client_key}"',
            "  IdentitiesOnly yes",
            "  StrictHostKeyChecking yes",
            f'  UserKnownHostsFile "{known_hosts or self.known_hosts}"',
            "  GlobalKnownHostsFile /dev/null",
            "  UpdateHostKeys no",
            "  CheckHostIP no",
            "  BatchMode yes",
            "  ConnectTimeout 5",
            "  ServerAliveInterval 5",
            "  ServerAliveCountMax 2",
            "  ControlMaster auto",
            f"  ControlPath {control_path or self.control_path}",
            "  ControlPersist 60",
            "  LogLevel ERROR",
        ]
        return "\n".join(lines) + "\n"

    def ssh(self, host: FleetHost, command: str, config: Path | None = None,
            timeout: float = netns.TIMEOUT) -> subprocess.CompletedProcess:
        """Run a shell command on `host` with the plain ssh client and this fleet's config."""
        return netns.run("ssh", "-F", str(config or self.ssh_config), host.address, command, check=False,
                         timeout=timeout)

    def control_socket(self, host: FleetHost) -> Path:
        """Where ssh keeps the ControlMaster socket for `host` (exists while a master runs)."""
        for line in netns.run("ssh", "-F", str(self.ssh_config), "-G", host.address).stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "controlpath":
                return Path(value)
        raise RuntimeError("ssh -G named no controlpath")

    def master_pid(self, host: FleetHost) -> int | None:
        """The pid of the ssh ControlMaster connected to `host`, None when none runs."""
        check = netns.run("ssh", "-F", str(self.ssh_config), "-O", "check", host.address, check=False, timeout=10)
        found = re.search(r"pid=(\d+)", check.stderr + check.stdout)
        return int(found.group(1)) if check.returncode == 0 and found else None

    def close_connection(self, host: FleetHost) -> None:
        """End the ControlMaster for `host`, if one runs."""
        self.close_connections([host])

    def close_connections(self, hosts: list[FleetHost] | None = None) -> None:
        """End the ControlMasters of these hosts (all by default): all asked at once, then waited for
        (a master takes about a second to go)."""
        masters = []
        for host in self.hosts if hosts is None else hosts:
            pid = self.master_pid(host)
            if pid is not None:
                netns.run("ssh", "-F", str(self.ssh_config), "-O", "exit", host.address, check=False, timeout=10)
                masters.append(pid)
        deadline = time.monotonic() + 5
        while any(netns.alive(pid) for pid in masters) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in masters:
            if netns.alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # Faults.
    def unreachable(self, host: FleetHost) -> None:
        """Take the host's link down inside its namespace: connections to it time out (or find no route)
        as to a host that went away. The root namespace keeps its route to the host over the link (it
        is only marked linkdown), so nothing is sent anywhere else. Its ControlMaster is ended first."""
        self.close_connection(host)
        netns.run("ip", "-n", host.namespace, "link", "set", netns.DEVICE, "down")

    def reachable(self, host: FleetHost) -> None:
        """Undo `unreachable`."""
        netns.run("ip", "-n", host.namespace, "link", "set", netns.DEVICE, "up")
        if self.shared_address:
            # A link that went down lost its routes: the one to the shared address comes back with it.
            netns.route_shared(host, self.shared_address)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{host.name} did not come back")

    def set_latency(self, ms: int) -> None:
        """Delay every packet each host sends by `ms` milliseconds (0: no delay)."""
        if ms < 0:
            raise ValueError("latency must be >= 0 ms")
        if ms and self.latency_method is None:
            self.latency_method = "netem" if netns.netem_works(self.hosts[0].namespace) else "nfqueue"
            if self.latency_method == "nfqueue" and not shutil.which("iptables", path=netns.PATH):
                self.latency_method = None
                raise RuntimeError("no netem in this kernel and no iptables for the NFQUEUE delayer"
                                   " (Debian package iptables)")
        for host in self.hosts:
            if self.latency_method == "netem":
                if ms:
                    netns.inside(host.namespace, "tc", "qdisc", "replace", "dev", netns.DEVICE, "root", "netem",
                                 "delay", f"{ms}ms")
                else:
                    netns.inside(host.namespace, "tc", "qdisc", "del", "dev", netns.DEVICE, "root", check=False)
            elif self.latency_method == "nfqueue":
                self._set_delayer(host, ms)
        self.latency_ms = ms

    def _set_delayer(self, host: FleetHost, ms: int) -> None:
        rule = ["OUTPUT", "-o", netns.DEVICE, "-j", "NFQUEUE", "--queue-num", str(netdelay.QUEUE), "--queue-bypass"]
        if host.delayer is not None:
            netns.stop(host.delayer)
            host.delayer = None
        if not ms:
            netns.inside(host.namespace, "iptables", "-w", "-D", *rule, check=False)
            return
        host.delayer = netns.start_program("netdelay.py", [str(ms)], host.folder / "delayer.log",
                                           f"the delayer of {host.name}", namespace=host.namespace)
        if netns.inside(host.namespace, "iptables", "-w", "-C", *rule, check=False).returncode != 0:
            netns.inside(host.namespace, "iptables", "-w", "-A", *rule)

    def delay_evidence(self, host: FleetHost) -> str:
        """What puts the delay on the host's link, as the system shows it: its qdisc (netem) or its
        NFQUEUE rule and delayer (nfqueue)."""
        shown = netns.inside(host.namespace, "tc", "qdisc", "show", "dev", netns.DEVICE).stdout
        if self.latency_method == "nfqueue":
            shown += netns.inside(host.namespace, "iptables", "-w", "-S", "OUTPUT").stdout
            if host.delayer is not None and host.delayer.poll() is None:
                shown += f"delayer pid {host.delayer.pid}: delay {self.latency_ms}ms\n"
        return shown

    # A fleet is a sequence of hosts.
    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, index: int) -> FleetHost:
        return self.hosts[index]

    def by_name(self, name: str) -> FleetHost:
        (host,) = [h for h in self.hosts if h.name == name]
        return host


def teardown(fleet: Fleet) -> list[str]:
    """Undo everything the fleet made, as far as it got; the problems met, if any."""
    problems: list[str] = []

    def attempt(what: str, action, *args) -> None:
        try:
            action(*args)
        except Exception as error:  # go on with the rest of the teardown
            problems.append(f"{what}: {error}")

    if fleet.ssh_config.exists():
        attempt("closing the connections", fleet.close_connections)
    if fleet.forwarder is not None:
        attempt("stopping the forwarder", netns.stop, fleet.forwarder)
    if fleet.shared_address is not None:
        attempt("removing the shared address", netns.run, "ip", "addr", "del", f"{fleet.shared_address}/32", "dev",
                netns.SHARED_DEVICE)
    for host in fleet.hosts:
        for process in (host.delayer, host.sshd):
            if process is not None:
                attempt(f"stopping a process of {host.name}", netns.stop, process)
        attempt(f"removing the link and namespace of {host.name}", netns.remove_link, host)
    for host in fleet.hosts:
        deadline = time.monotonic() + 5
        while netns.run("ip", "link", "show", "dev", host.link, check=False).returncode == 0:
            if time.monotonic() > deadline:
                problems.append(f"link {host.link} is still there")
                break
            time.sleep(0.05)
    shutil.rmtree(fleet.runtime, ignore_errors=True)
    return problems


@contextlib.contextmanager
def held(made: Fleet, undo: Callable[[Fleet], list[str]], what: str) -> Iterator[Fleet]:
    """The fleet being made, undone on exit: after a failure (which goes on as it was), or after the body
    (the problems of undoing it raised then, as `what`)."""
    try:
        yield made
    except BaseException:
        undo(made)
        raise
    problems = undo(made)
    if problems:
        raise RuntimeError(f"{what}: " + "; ".join(problems))


@contextlib.contextmanager
def fleet(count: int, folder: Path, latency_ms: int = 0, forward: tuple[int, ...] = ()) -> Iterator[Fleet]:
    """`count` hosts, each in a network namespace with an sshd of its own, torn down on exit.

    `folder` keeps the keys, known_hosts, ssh_config and each host's folder (`folder/<host>/srv` is
    the host's COMMON). `latency_ms`: each host's packets are delayed that long. `forward`: ports of
    this machine's 127.0.0.1 (e.g. `MACHINE_SERVICES`) that every host, and the root namespace, reach
    at `fleet.shared_address`.
    """
    if count < 1:
        raise ValueError("a fleet has at least one host")
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # ControlPath must fit a unix socket path (about 100 characters): a short folder of its own.
    with held(Fleet(folder, Path(tempfile.mkdtemp(prefix="rbf", dir="/tmp"))), teardown, "fleet teardown") as made:
        sshd.keygen(made.client_key, "runbook-fleet-client")
        authorized_keys = folder / "authorized_keys"
        authorized_keys.write_text(Path(f"{made.client_key}.pub").read_text())
        # sshd's privilege separation directory, which systemd would make at boot.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        made.reserve(count, "rbf", FleetHost, lambda token, name: folder / name / "srv", bool(forward))
        for host in made.hosts:
            host.root.mkdir(parents=True, exist_ok=True)
            sshd.keygen(host.host_key, f"runbook-fleet-{host.name}")
            sshd.start(host, sshd.configure(host, authorized_keys))
        made.admit(forward)
        for host in made.hosts:
            sshd.wait(host)
        if latency_ms:
            made.set_latency(latency_ms)
        yield made

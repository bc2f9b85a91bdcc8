"""Real remote hosts for the tests: one network namespace per host, a veth link into it, and an sshd of
its own on port 22 of the host's address, reached over ssh with verified host keys.

    with fleet(3, tmp_path) as hosts:
        for host in hosts:
            testinfra.get_host(host.spec, ssh_config=str(hosts.ssh_config)).check_output("hostname")

Each host has its own address (10.213.<n>.2/30, the root namespace's end is 10.213.<n>.1), no default
route, its own hostname, and its own files under one common path (`COMMON`, bind-mounted from
`folder/<host>/srv` in a private mount namespace), so an environment file can name the same app root
for every host while each keeps its own files. Only traffic between the root namespace and the
namespaces made here is ever sent. Everything is torn down on exit, also when the body fails.

The machine's own services (PostgreSQL, Redis, RabbitMQ on 127.0.0.1) can be reached from every host at
one shared address (`fleet(3, folder, forward=MACHINE_SERVICES)`): an address of the 10.213.0.0/24 range
added to the root namespace's `lo` as a /32 (so it also works from the root namespace), a route to it in
each host's namespace over the host's own link, and a forwarder (`python fleet.py forward ...`, below)
that relays each connection to that address's port to the same port on 127.0.0.1, nowhere else.

Latency: `tc ... netem delay` on each host's link where the kernel has netem; where it has not (the
project's machines: no sch_netem), each host's outgoing packets are queued with iptables' NFQUEUE to a
small delayer in its namespace (`python fleet.py delay MS`, below) that lets each one go after MS ms.

This module uses only the standard library, so that it can also run as that delayer.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

COMMON = Path("/srv/runbook-fleet")
"""The path every host sees, each host with its own files behind it."""

SSHD = "/usr/sbin/sshd"
SUBNET = "10.213"
"""Each host's link is 10.213.<n>.0/30: .1 in the root namespace, .2 inside the host's namespace."""

DEVICE = "eth0"
"""The name of the host's end of its link, inside its namespace."""

TIMEOUT = 30
"""Seconds any one command run here may take."""

DELAY_QUEUE = 0

MACHINE_SERVICES = (5432, 6379, 5672)
"""The machine's PostgreSQL, Redis and RabbitMQ: the ports `forward=` usually names."""

SHARED_DEVICE = "lo"
"""Where the shared address lives in the root namespace (this machine's kernel has no dummy links)."""

_PATH = os.pathsep.join(dict.fromkeys(["/usr/sbin", "/sbin", *os.environ.get("PATH", "/bin").split(os.pathsep)]))
ENV = {**os.environ, "PATH": _PATH}
"""The environment for commands run here: ip, tc, iptables and sysctl are in sbin, which a caller's PATH
may lack."""


def _run(*command: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                            env=ENV)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _in(namespace: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command inside a namespace."""
    return _run("ip", "netns", "exec", namespace, *command, check=check)


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _run("ip", "netns", "list").stdout.splitlines() if line.strip()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def can_make_namespaces() -> str | None:
    """None when this machine can run a fleet, else why not (tests skip with it)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "hostname", "ssh", "ssh-keygen"):
        if not shutil.which(tool, path=_PATH):
            return f"{tool} is not installed"
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (Debian package openssh-server)"
    probe = f"rbfprobe{secrets.token_hex(3)}"
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"cannot make a network namespace: {made.stderr.strip()}"
        isolated = _in(probe, "unshare", "--mount", "--uts", "--propagation", "private", "true", check=False)
        if isolated.returncode != 0:
            return f"cannot make a mount namespace: {isolated.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as error:
        return f"cannot make a network namespace: {error}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def _netem_works(namespace: str) -> bool:
    if not shutil.which("tc", path=_PATH):
        return False
    if _in(namespace, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False).returncode:
        return False
    _in(namespace, "tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return True


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
        self._shared_added = False

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
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        """Run a shell command on `host` with the plain ssh client and this fleet's config."""
        return _run("ssh", "-F", str(config or self.ssh_config), host.address, command, check=False, timeout=timeout)

    def control_socket(self, host: FleetHost) -> Path:
        """Where ssh keeps the ControlMaster socket for `host` (exists while a master runs)."""
        for line in _run("ssh", "-F", str(self.ssh_config), "-G", host.address).stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "controlpath":
                return Path(value)
        raise RuntimeError("ssh -G named no controlpath")

    def master_pid(self, host: FleetHost) -> int | None:
        """The pid of the ssh ControlMaster connected to `host`, None when none runs."""
        check = _run("ssh", "-F", str(self.ssh_config), "-O", "check", host.address, check=False, timeout=10)
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
                _run("ssh", "-F", str(self.ssh_config), "-O", "exit", host.address, check=False, timeout=10)
                masters.append(pid)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in masters) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in masters:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # Faults.
    def unreachable(self, host: FleetHost) -> None:
        """Take the host's link down inside its namespace: connections to it time out (or find no route)
        as to a host that went away. The root namespace keeps its route to the host over the link (it
        is only marked linkdown), so nothing is sent anywhere else. Its ControlMaster is ended first."""
        self.close_connection(host)
        _run("ip", "-n", host.namespace, "link", "set", DEVICE, "down")

    def reachable(self, host: FleetHost) -> None:
        """Undo `unreachable`."""
        _run("ip", "-n", host.namespace, "link", "set", DEVICE, "up")
        if self.shared_address:
            # A link that went down lost its routes: the one to the shared address comes back with it.
            _shared_route(self, host)
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
            self.latency_method = "netem" if _netem_works(self.hosts[0].namespace) else "nfqueue"
            if self.latency_method == "nfqueue" and not shutil.which("iptables", path=_PATH):
                self.latency_method = None
                raise RuntimeError("no netem in this kernel and no iptables for the NFQUEUE delayer"
                                   " (Debian package iptables)")
        for host in self.hosts:
            if self.latency_method == "netem":
                if ms:
                    _in(host.namespace, "tc", "qdisc", "replace", "dev", DEVICE, "root", "netem", "delay", f"{ms}ms")
                else:
                    _in(host.namespace, "tc", "qdisc", "del", "dev", DEVICE, "root", check=False)
            elif self.latency_method == "nfqueue":
                self._set_delayer(host, ms)
        self.latency_ms = ms

    def _set_delayer(self, host: FleetHost, ms: int) -> None:
        rule = ["OUTPUT", "-o", DEVICE, "-j", "NFQUEUE", "--queue-num", str(DELAY_QUEUE), "--queue-bypass"]
        if host.delayer is not None:
            _stop(host.delayer)
            host.delayer = None
        if not ms:
            _in(host.namespace, "iptables", "-w", "-D", *rule, check=False)
            return
        with open(host.folder / "delayer.log", "ab") as log:
            host.delayer = subprocess.Popen(
                ["ip", "netns", "exec", host.namespace, sys.executable, os.path.abspath(__file__), "delay", str(ms)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True, env=ENV)
        ready = select.select([host.delayer.stdout], [], [], 10)[0] and host.delayer.stdout.readline()
        if not ready or b"ready" not in ready:
            raise RuntimeError(f"the delayer of {host.name} did not start: see {host.folder / 'delayer.log'}")
        if _in(host.namespace, "iptables", "-w", "-C", *rule, check=False).returncode != 0:
            _in(host.namespace, "iptables", "-w", "-A", *rule)

    def delay_evidence(self, host: FleetHost) -> str:
        """What puts the delay on the host's link, as the system shows it: its qdisc (netem) or its
        NFQUEUE rule and delayer (nfqueue)."""
        shown = _in(host.namespace, "tc", "qdisc", "show", "dev", DEVICE).stdout
        if self.latency_method == "nfqueue":
            shown += _in(host.namespace, "iptables", "-w", "-S", "OUTPUT").stdout
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


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()


def _keygen(path: Path, comment: str) -> None:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def _free_subnets(count: int) -> list[int]:
    """`count` third octets of 10.213.<n>.0/30 links that no link of the root namespace uses."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", _run("ip", "-o", "-4", "addr", "show").stdout))
    free = [n for n in range(1, 255) if str(n) not in used]
    if len(free) < count:
        raise RuntimeError(f"only {len(free)} free {SUBNET}.<n>.0/30 links for {count} hosts")
    return free[:count]


def _disable_ipv6(device: str, namespace: str | None = None) -> None:
    """No IPv6 (no link-local chatter) on a link of ours."""
    command = ["sysctl", "-qw", f"net.ipv6.conf.{device}.disable_ipv6=1"]
    _run(*(["ip", "netns", "exec", namespace] if namespace else []), *command, check=False)


def _link(host: FleetHost) -> None:
    """The host's namespace, its veth link and addresses: no default route, no IPv6."""
    _run("ip", "netns", "add", host.namespace)
    _run("ip", "link", "add", host.link, "type", "veth", "peer", "name", DEVICE, "netns", host.namespace)
    _disable_ipv6(host.link)
    _disable_ipv6(DEVICE, host.namespace)
    _run("ip", "addr", "add", f"{host.local_address}/30", "dev", host.link)
    _run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/30", "dev", DEVICE)
    _run("ip", "-n", host.namespace, "link", "set", "lo", "up")
    _run("ip", "-n", host.namespace, "link", "set", DEVICE, "up")
    _run("ip", "link", "set", host.link, "up")


def _shared_route(fleet: Fleet, host: FleetHost) -> None:
    """The host reaches the shared address over its own link, through the root namespace's end of it."""
    _run("ip", "-n", host.namespace, "route", "replace", f"{fleet.shared_address}/32", "via", host.local_address,
         "dev", DEVICE)


def _free_shared_address() -> str:
    """An address 10.213.0.<k> that nothing in the root namespace holds (called under the fleets' lock)."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.0\.(\d+)/", _run("ip", "-o", "-4", "addr", "show").stdout))
    for k in range(1, 255):
        if str(k) not in used:
            return f"{SUBNET}.0.{k}"
    raise RuntimeError(f"no free shared address in {SUBNET}.0.0/24")


def _start_forwarder(fleet: Fleet, ports: tuple[int, ...]) -> None:
    """Relay the shared address's `ports` to the same ports on 127.0.0.1, in a child process of its own."""
    with open(fleet.folder / "forwarder.log", "ab") as log:
        fleet.forwarder = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "forward", fleet.shared_address, *map(str, ports)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True, env=ENV)
    ready = select.select([fleet.forwarder.stdout], [], [], 10)[0] and fleet.forwarder.stdout.readline()
    if not ready or b"ready" not in ready:
        raise RuntimeError(f"the forwarder did not start: see {fleet.folder / 'forwarder.log'}")


def _sshd_config(host: FleetHost, authorized_keys: Path) -> Path:
    config = host.folder / "sshd_config"
    config.write_text("\n".join([
        f"# sshd of test host {host.name} in network namespace {host.namespace}",
        f"ListenAddress {host.address}:22",
        f'HostKey "{host.host_key}"',
        f'PidFile "{host.folder / "sshd.pid"}"',
        "PermitRootLogin prohibit-password",
        "AllowUsers root",
        "PubkeyAuthentication yes",
        f'AuthorizedKeysFile "{authorized_keys}"',
        # The keys live in a test folder under /tmp (world-writable), which StrictModes would refuse.
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "X11Forwarding no",
        "PrintMotd no",
        "MaxSessions 50",
        "MaxStartups 100:30:200",
        "Subsystem sftp internal-sftp",
        "",
    ]))
    return config


def _start_sshd(host: FleetHost, config: Path) -> None:
    """sshd in the host's namespace, in a private mount (its own COMMON) and UTS (its own hostname)
    namespace of its own."""
    script = ('set -e; mount --bind "$1" "$2"; hostname "$3"; '
              # A fresh server's root has no shell setup of this machine's developers (pyenv init in
              # /root/.bashrc costs every command 0.2 s): hide it from the host's sessions only.
              'if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi; '
              f'exec {SSHD} -D -f "$4" -E "$5"')
    log = host.folder / "sshd.log"
    with open(host.folder / "start.log", "wb") as start:
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script, "sshd", str(host.root), str(COMMON), host.name, str(config), str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=start, start_new_session=True,
                env=ENV)


def _wait_for_sshd(host: FleetHost) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if host.sshd.poll() is not None:
            logs = [(host.folder / n).read_text(errors="replace") for n in ("start.log", "sshd.log")
                    if (host.folder / n).exists()]
            raise RuntimeError(f"sshd of {host.name} exited {host.sshd.returncode}: {' '.join(logs).strip()}")
        with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=1) as conn:
            conn.settimeout(2)
            if conn.recv(64).startswith(b"SSH-"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd of {host.name} did not answer on {host.address}:22")


def _teardown(fleet: Fleet) -> list[str]:
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
        attempt("stopping the forwarder", _stop, fleet.forwarder)
    if fleet._shared_added:
        attempt("removing the shared address", _run, "ip", "addr", "del", f"{fleet.shared_address}/32", "dev",
                SHARED_DEVICE)
    for host in fleet.hosts:
        for process in (host.delayer, host.sshd):
            if process is not None:
                attempt(f"stopping a process of {host.name}", _stop, process)
        if host.namespace in _namespaces():
            # What is left in the namespace: connections' sshd and the sessions under them.
            pids = _run("ip", "netns", "pids", host.namespace, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        # Deleting one end of a veth pair deletes both.
        _run("ip", "link", "del", host.link, check=False)
        if host.namespace in _namespaces():
            attempt(f"deleting namespace {host.namespace}", _run, "ip", "netns", "del", host.namespace)
    for host in fleet.hosts:
        deadline = time.monotonic() + 5
        while _run("ip", "link", "show", "dev", host.link, check=False).returncode == 0:
            if time.monotonic() > deadline:
                problems.append(f"link {host.link} is still there")
                break
            time.sleep(0.05)
    shutil.rmtree(fleet.runtime, ignore_errors=True)
    return problems


@contextlib.contextmanager
def fleet(count: int, folder: Path, latency_ms: int = 0, forward: tuple[int, ...] = ()):
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
    runtime = Path(tempfile.mkdtemp(prefix="rbf", dir="/tmp"))
    result = Fleet(folder, runtime)
    token = secrets.token_hex(3)
    try:
        _keygen(result.client_key, "runbook-fleet-client")
        authorized_keys = folder / "authorized_keys"
        authorized_keys.write_text(Path(f"{result.client_key}.pub").read_text())
        COMMON.mkdir(parents=True, exist_ok=True)
        # sshd's privilege separation directory, which systemd would make at boot.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        # Choosing the links' subnets and making them is one step for concurrent fleets.
        lock = os.open(COMMON, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            names = _namespaces()
            while any(f"rbf{token}-" in n for n in names):
                token = secrets.token_hex(3)
            for index, octet in enumerate(_free_subnets(count), start=1):
                name = f"host{index}"
                host = FleetHost(name=name, namespace=f"rbf{token}-{index}", address=f"{SUBNET}.{octet}.2",
                                 local_address=f"{SUBNET}.{octet}.1", link=f"rbf{token}h{index}",
                                 root=folder / name / "srv", folder=folder / name)
                result.hosts.append(host)
                _link(host)
            if forward:
                result.shared_address = _free_shared_address()
                _run("ip", "addr", "add", f"{result.shared_address}/32", "dev", SHARED_DEVICE)
                result._shared_added = True
        finally:
            os.close(lock)
        known = []
        for host in result.hosts:
            host.root.mkdir(parents=True, exist_ok=True)
            _keygen(host.host_key, f"runbook-fleet-{host.name}")
            kind, key = Path(f"{host.host_key}.pub").read_text().split()[:2]
            known.append(f"{host.address} {kind} {key}")
            _start_sshd(host, _sshd_config(host, authorized_keys))
        result.known_hosts.write_text("\n".join(known) + "\n")
        result.ssh_config.write_text(result.config_text())
        if forward:
            result.forwarded = tuple(forward)
            for host in result.hosts:
                _shared_route(result, host)
            _start_forwarder(result, result.forwarded)
        for host in result.hosts:
            _wait_for_sshd(host)
        if latency_ms:
            result.set_latency(latency_ms)
    except BaseException:
        _teardown(result)
        raise
    try:
        yield result
    except BaseException:
        _teardown(result)
        raise
    problems = _teardown(result)
    if problems:
        raise RuntimeError("fleet teardown: " + "; ".join(problems))


# The delayer: `python fleet.py delay MS`, run inside a host's namespace, lets every packet that
# iptables queues to NFQUEUE 0 go after MS milliseconds (netfilter's nfnetlink_queue protocol).
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2


def _nl_attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _nl_message(kind: int, flags: int, seq: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", DELAY_QUEUE) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def _nl_packets(data: bytes):
    """The ids of the queued packets in a netlink read; raises on an error answer."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + 16)
            if code:
                raise OSError(-code, os.strerror(-code))
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, at + 4)[0]
                at += (size + 3) & ~3
        offset += (length + 3) & ~3


def _delay(ms: int) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    sock.bind((0, 0))
    setup = [
        _nl_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)),
        _nl_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        _nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)),
        _nl_attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
        + _nl_attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
    ]
    for seq, attrs in enumerate(setup, start=1):
        sock.send(_nl_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, attrs))
        list(_nl_packets(sock.recv(65536)))
    pending: collections.deque[tuple[float, int]] = collections.deque()

    def accept(packet: int) -> None:
        verdict = _nl_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet))
        sock.send(_nl_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, verdict))

    def stop(*_):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        while True:
            wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
            if select.select([sock], [], [], wait)[0]:
                try:
                    data = sock.recv(1 << 20)
                except OSError as error:
                    if error.errno == errno.ENOBUFS:
                        continue
                    raise
                now = time.monotonic()
                pending.extend((now + ms / 1000, packet) for packet in _nl_packets(data))
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                accept(pending.popleft()[1])
    finally:
        while pending:  # let what is held go, not drop it
            with contextlib.suppress(OSError):
                accept(pending.popleft()[1])


# The forwarder: `python fleet.py forward ADDRESS PORT...` relays every connection to ADDRESS:PORT to
# 127.0.0.1:PORT (the same port, this machine's own service), and ends when its parent is gone.
FORWARD_TARGET = "127.0.0.1"


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, port: int) -> None:
    import threading

    try:
        server = socket.create_connection((FORWARD_TARGET, port), timeout=10)
    except OSError as error:
        print(f"forward :{port}: cannot reach {FORWARD_TARGET}:{port}: {error}", file=sys.stderr, flush=True)
        client.close()
        return
    server.settimeout(None)
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(server, client), daemon=True)
    back.start()
    _pump(client, server)
    back.join()
    client.close()
    server.close()


def _forward(address: str, ports: list[int]) -> None:
    import threading

    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
        listeners.append((listener, port))

    def serve(listener: socket.socket, port: int) -> None:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_relay, args=(client, port), daemon=True).start()

    for listener, port in listeners:
        threading.Thread(target=serve, args=(listener, port), daemon=True).start()
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    while os.getppid() == parent:  # the fleet's process died without its teardown: go too
        time.sleep(1)


if __name__ == "__main__" and sys.argv[1:2] == ["delay"]:
    _delay(int(sys.argv[2]))
elif __name__ == "__main__" and sys.argv[1:2] == ["forward"]:
    _forward(sys.argv[2], [int(p) for p in sys.argv[3:]])

"""The network plumbing of the tests' hosts: commands run here (`run`, `inside` a namespace), the links
(one veth pair per host, 10.213.<n>.0/30: .1 in the root namespace, .2 in the host's), the shared address
the machine's services are forwarded to, and the helper programs a fleet starts (`netdelay.py`,
`forwarder.py`), each of which says `ready` when it is.

Choosing free subnets and addresses and making them is one step for concurrent fleets: `reserved()`
holds the fleets' lock (on `COMMON`, the path every host sees) around it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

COMMON = Path("/srv/runbook-fleet")
"""The path every host sees, each host with its own files behind it."""

SUBNET = "10.213"
DEVICE = "eth0"
"""The name of the host's end of its link, inside its namespace."""

SHARED_DEVICE = "lo"
"""Where the shared address lives in the root namespace (this machine's kernel has no dummy links)."""

TIMEOUT = 30
"""Seconds any one command run here may take."""

PATH = os.pathsep.join(dict.fromkeys(["/usr/sbin", "/sbin", *os.environ.get("PATH", "/bin").split(os.pathsep)]))
ENV = {**os.environ, "PATH": PATH}
"""The environment for commands run here: ip, tc, iptables and sysctl are in sbin, which a caller's PATH
may lack."""

HERE = Path(__file__).resolve().parent


class Linked(Protocol):
    """A host with a link of its own (`tests.fleet.FleetHost` and its kinds)."""

    namespace: str
    address: str
    local_address: str
    link: str


def run(*command: str, check: bool = True, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                            env=ENV)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def inside(namespace: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command inside a network namespace."""
    return run("ip", "netns", "exec", namespace, *command, check=check)


def namespaces() -> set[str]:
    return {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(process: subprocess.Popen) -> None:
    """Terminate a child (killed if it takes more than 5 s) and close its pipes."""
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


def start_program(program: str, args: list[str], log: Path, what: str,
                  namespace: str | None = None) -> subprocess.Popen:
    """Start one of the helper programs beside this module (`program`, its file name) in a session of its own,
    inside `namespace` if given, its errors in `log`, and wait (10 s at most) for it to print `ready`."""
    where = ["ip", "netns", "exec", namespace] if namespace else []
    with open(log, "ab") as errors:
        process = subprocess.Popen([*where, sys.executable, str(HERE / program), *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=errors, start_new_session=True, env=ENV)
    ready = select.select([process.stdout], [], [], 10)[0] and process.stdout.readline()
    if not ready or b"ready" not in ready:
        stop(process)
        raise RuntimeError(f"{what} did not start: see {log}")
    return process


def netem_works(namespace: str) -> bool:
    if not shutil.which("tc", path=PATH):
        return False
    if inside(namespace, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False).returncode:
        return False
    inside(namespace, "tc", "qdisc", "del", "dev", "lo", "root", check=False)
    return True


@contextlib.contextmanager
def reserved() -> Iterator[None]:
    """The fleets' lock, held while free subnets and addresses are chosen and taken."""
    COMMON.mkdir(parents=True, exist_ok=True)
    lock = os.open(COMMON, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


def free_subnets(count: int) -> list[int]:
    """`count` third octets of 10.213.<n>.0/30 links that no link of the root namespace uses."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", run("ip", "-o", "-4", "addr", "show").stdout))
    free = [n for n in range(1, 255) if str(n) not in used]
    if len(free) < count:
        raise RuntimeError(f"only {len(free)} free {SUBNET}.<n>.0/30 links for {count} hosts")
    return free[:count]


def _disable_ipv6(device: str, namespace: str | None = None) -> None:
    """No IPv6 (no link-local chatter) on a link of ours."""
    command = ["sysctl", "-qw", f"net.ipv6.conf.{device}.disable_ipv6=1"]
    run(*(["ip", "netns", "exec", namespace] if namespace else []), *command, check=False)


def make_link(host: Linked) -> None:
    """The host's namespace, its veth link and addresses: no default route, no IPv6."""
    run("ip", "netns", "add", host.namespace)
    run("ip", "link", "add", host.link, "type", "veth", "peer", "name", DEVICE, "netns", host.namespace)
    _disable_ipv6(host.link)
    _disable_ipv6(DEVICE, host.namespace)
    run("ip", "addr", "add", f"{host.local_address}/30", "dev", host.link)
    run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/30", "dev", DEVICE)
    run("ip", "-n", host.namespace, "link", "set", "lo", "up")
    run("ip", "-n", host.namespace, "link", "set", DEVICE, "up")
    run("ip", "link", "set", host.link, "up")


def add_shared_address() -> str:
    """Take an address 10.213.0.<k> that nothing in the root namespace holds (under `reserved()`)."""
    used = set(re.findall(rf"inet {re.escape(SUBNET)}\.0\.(\d+)/", run("ip", "-o", "-4", "addr", "show").stdout))
    free = next((f"{SUBNET}.0.{k}" for k in range(1, 255) if str(k) not in used), None)
    if free is None:
        raise RuntimeError(f"no free shared address in {SUBNET}.0.0/24")
    run("ip", "addr", "add", f"{free}/32", "dev", SHARED_DEVICE)
    return free


def route_shared(host: Linked, shared_address: str) -> None:
    """The host reaches the shared address over its own link, through the root namespace's end of it."""
    run("ip", "-n", host.namespace, "route", "replace", f"{shared_address}/32", "via", host.local_address,
        "dev", DEVICE)


def remove_link(host: Linked) -> None:
    """Kill what is left in the host's namespace (connections' sshd, sessions), delete its link (both ends go
    together) and the namespace."""
    if host.namespace in namespaces():
        for pid in run("ip", "netns", "pids", host.namespace, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    run("ip", "link", "del", host.link, check=False)
    if host.namespace in namespaces():
        run("ip", "netns", "del", host.namespace)

"""Hosts as testinfra hosts: one connection abstraction for checks and actions alike.

    >>> host = connect(env.hosts[0])
    >>> facts(host, ["/"]).cpus
    2
"""

import base64
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, TypeVar

import testinfra

from .config import Host, RequiredFile
from .errors import ActionFailed, CheckFailed, RunbookError
from .findings import Finding

T = TypeVar("T")
I = TypeVar("I")


def connect(host: Host):
    """The testinfra host for an environment's host; ssh never prompts and gives up after the timeout."""
    return testinfra.get_host(
        host.spec, timeout=host.connect_timeout, ssh_extra_args="-o BatchMode=yes"
    )


def run(host: Host, *argv: str):
    """Run an argument list on the host; every argument is quoted."""
    return connect(host).run(" ".join(shlex.quote(a) for a in argv))


def script(host: Host, text: str, *args: str):
    """Run a POSIX shell script on the host with `args` as "$1", "$2", ...; one round trip."""
    return run(host, "sh", "-c", text, "sh", *args)


def each(items: list[I], check: Callable[[I], T]) -> list[T]:
    """Run `check` on every host (or host and service, ...) concurrently, results in order."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        return list(pool.map(check, items))


@dataclass(frozen=True)
class Disk:
    mount: str
    total_kb: int
    available_kb: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.available_kb / self.total_kb if self.total_kb else 0.0


@dataclass(frozen=True)
class Facts:
    """What preflight needs to know about a host, gathered in one command."""

    cpus: int
    memory_mb: int
    disks: dict[str, Disk | None]
    """Each configured mount; None when the path does not exist on the host."""

    def __str__(self) -> str:
        disks = ", ".join(
            f"{m}: {d.free_percent:.1f}% free" if d else f"{m}: missing" for m, d in self.disks.items()
        )
        return f"{self.cpus} CPUs, {self.memory_mb} MB memory, {disks}"


FACTS = r"""
nproc
awk '/^MemTotal:/ {print $2}' /proc/meminfo
for m in "$@"; do
  if [ -e "$m" ]; then df -P -k -- "$m" | tail -n 1 | awk -v m="$m" '{printf "%s\t%d\t%d\n", m, $3 + $4, $4}'
  else printf '%s\tmissing\n' "$m"; fi
done
"""


class Unreachable(Exception):
    """The host did not answer; the message says why (timeout, refused, auth)."""


def facts(host: Host, mounts: list[str]) -> Facts:
    result = script(host, FACTS, *mounts)
    if result.rc != 0:
        raise Unreachable(_reason(result))
    lines = result.stdout.splitlines()
    disks: dict[str, Disk | None] = {}
    for line in lines[2:]:
        mount, *sizes = line.split("\t")
        disks[mount] = Disk(mount, int(sizes[0]), int(sizes[1])) if len(sizes) == 2 else None
    return Facts(cpus=int(lines[0]), memory_mb=int(lines[1]) // 1024, disks=disks)


def _reason(result) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return text[-1] if text else f"exit code {result.rc}"


def answers(host: Host) -> str:
    """The host's kernel and hostname, or `Unreachable` with the reason."""
    try:
        result = script(host, "uname -srn")
    except Exception as e:  # a backend that cannot even start (bad spec, missing ssh client)
        raise Unreachable(str(e)) from None
    if result.rc != 0:
        raise Unreachable(_reason(result))
    return result.stdout.strip()


def writable(host: Host, folder: str) -> str | None:
    """None when a file can be created and removed in `folder` on the host, else the reason."""
    result = script(
        host,
        'f=$(mktemp -p "$1" .runbook-probe.XXXXXX) && rm -f -- "$f"',
        folder,
    )
    return None if result.rc == 0 else _reason(result)


def free_kb(host: Host, folder: str) -> int:
    result = script(host, 'df -P -k -- "$1" | tail -n 1', folder)
    if result.rc != 0:
        raise Unreachable(_reason(result))
    return int(result.stdout.split()[3])


def reachability(host: Host) -> Finding:
    try:
        return Finding(f"host {host.name}", True, f"answered over {host.spec}: {answers(host)}")
    except Unreachable as e:
        return Finding(f"host {host.name}", False, f"does not answer over {host.spec} within {host.connect_timeout} s: {e}")


def gather(hosts: list[Host], mounts: list[str]) -> dict[str, Facts]:
    """Facts of every host, gathered concurrently; `CheckFailed` names each host that did not answer."""

    def one(host: Host) -> Facts | str:
        try:
            return facts(host, mounts)
        except Unreachable as e:
            return f"host {host.name}: does not answer: {e}"

    results = dict(zip((h.name for h in hosts), each(hosts, one)))
    failed = [r for r in results.values() if isinstance(r, str)]
    if failed:
        raise CheckFailed("; ".join(failed))
    return results


def cpus(facts: dict[str, Facts], minimum: int) -> list[Finding]:
    return [Finding(f"host {n}", f.cpus >= minimum, f"{f.cpus} CPUs (required at least {minimum})") for n, f in facts.items()]


def memory(facts: dict[str, Facts], minimum_mb: int) -> list[Finding]:
    return [
        Finding(f"host {n}", f.memory_mb >= minimum_mb, f"{f.memory_mb} MB memory (required at least {minimum_mb} MB)")
        for n, f in facts.items()
    ]


def disk_space(facts: dict[str, Facts], min_free_percent: float) -> list[Finding]:
    findings = []
    for name, f in facts.items():
        for mount, disk in f.disks.items():
            if disk is None:
                findings.append(Finding(f"host {name}", False, f"mount {mount} does not exist"))
                continue
            ok = disk.free_percent >= min_free_percent
            findings.append(Finding(
                f"host {name}", ok,
                f"disk free on {mount} is {disk.free_percent:.1f}% ({disk.available_kb // 1024} MB of "
                f"{disk.total_kb // 1024} MB); required at least {min_free_percent:g}%",
            ))
    return findings


def reaches(host: Host, address: str, port: int) -> Finding:
    """Whether `host` opens a TCP connection to `address:port` (within about a second)."""
    ok = connect(host).addr(address).port(port).is_reachable
    return Finding(f"host {host.name}", ok, f"{'reaches' if ok else 'cannot reach'} {address}:{port}")


def required_file(host: Host, file: RequiredFile) -> Finding:
    found = connect(host).file(file.path)
    subject = f"host {host.name}"
    if not found.exists:
        return Finding(subject, False, f"{file.path} is missing")
    actual = {"mode": f"{found.mode:04o}", "owner": found.user, "group": found.group}
    wanted = {"mode": file.mode, "owner": file.owner, "group": file.group}
    wrong = [f"{k} is {actual[k]} (required {v})" for k, v in wanted.items() if v is not None and actual[k] != v]
    shown = f"{file.path} (mode {actual['mode']}, owner {actual['owner']}:{actual['group']})"
    return Finding(subject, not wrong, f"{file.path}: " + "; ".join(wrong) if wrong else f"{shown} as required")


def put(host: Host, path: str, data: bytes, mode: int) -> None:
    """Write a file on the host with `mode`, whole or not at all (written beside it, then renamed).

    On `local://` the engine writes it itself: no secret ever appears in a command line there.
    """
    backend = connect(host).backend
    if backend.get_connection_type() == "local":
        temp = f"{path}.runbook-{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temp, path)
        return
    result = script(
        host,
        'umask 077 && printf %s "$3" | base64 -d > "$1.runbook" && chmod "$2" "$1.runbook" && mv -f "$1.runbook" "$1"',
        path, f"{mode:04o}", base64.b64encode(data).decode(),
    )
    if result.rc != 0:
        raise RunbookError(f"host {host.name}: cannot write {path}: {_reason(result)}")


def read(host: Host, path: str) -> str | None:
    """A file's text on the host; None when it does not exist."""
    result = script(host, 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi', path)
    if result.rc == 3:
        return None
    if result.rc != 0:
        raise RunbookError(f"host {host.name}: cannot read {path}: {_reason(result)}")
    return result.stdout


def must(host: Host, text: str, *args: str, what: str) -> str:
    """Run a script that must succeed; `RunbookError` naming the host, what was done and why it failed."""
    result = script(host, text, *args)
    if result.rc != 0:
        raise ActionFailed(f"host {host.name}: {what} failed: {_reason(result)}")
    return result.stdout

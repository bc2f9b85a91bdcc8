"""Hosts as testinfra hosts: one connection abstraction for checks and actions alike.

    >>> host = connect(env.hosts[0])
    >>> facts(host, ["/"]).cpus
    2
"""

import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, TypeVar

import testinfra
from testinfra.backend.base import CommandResult

from . import ssh
from .config import Host, RequiredFile
from .errors import ActionFailed, RunbookError
from .findings import Finding

T = TypeVar("T")
I = TypeVar("I")

TRANSFER_TIMEOUT = 60
"""Seconds a file sent to a host may make no progress before the transfer is given up."""


def connect(host: Host):
    """The testinfra host for an environment's host; ssh never prompts and gives up after the timeout.

    `ssh://` goes through the environment's ssh config (`runbook/ssh.py`): host keys checked, one
    connection reused; the host's `connect_timeout` is the one that applies.
    """
    if host.spec.startswith("ssh://"):
        return testinfra.get_host(host.spec, ssh_config=str(ssh.config_file(host.ssh)), timeout=host.connect_timeout,
                                  controlpersist=host.ssh.control_persist_seconds)
    return testinfra.get_host(host.spec, timeout=host.connect_timeout, ssh_extra_args="-o BatchMode=yes")


def _ssh(host: Host) -> tuple[list[str], str]:
    """The ssh client's arguments for an `ssh://` host up to its name, and the name: the options testinfra
    gives it, so that both share one connection."""
    spec = connect(host).backend.host
    argv = ["ssh", "-F", str(ssh.config_file(host.ssh)), "-o", f"ConnectTimeout={host.connect_timeout}"]
    if spec.user:
        argv += ["-o", f"User={spec.user}"]
    if spec.port:
        argv += ["-o", f"Port={spec.port}"]
    return argv, spec.name


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
    lines = _reached(host, FACTS, *mounts).stdout.splitlines()
    disks: dict[str, Disk | None] = {}
    for line in lines[2:]:
        mount, *sizes = line.split("\t")
        disks[mount] = Disk(mount, int(sizes[0]), int(sizes[1])) if len(sizes) == 2 else None
    return Facts(cpus=int(lines[0]), memory_mb=int(lines[1]) // 1024, disks=disks)


def _reason(result) -> str:
    return _last_line(result.stderr or result.stdout or "", result.rc)


def _last_line(text: str, code: int) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else f"exit code {code}"


def _reached(host: Host, text: str, *args: str):
    """Run a script that must succeed; `Unreachable` with ssh's own reason when the host did not answer."""
    try:
        result = script(host, text, *args)
    except Exception as e:  # ssh failed (testinfra raises with its result), or a backend that cannot start
        failed = e.args[0] if e.args else None
        raise Unreachable(_reason(failed) if isinstance(failed, CommandResult) else str(e)) from None
    if result.rc != 0:
        raise Unreachable(_reason(result))
    return result


def answers(host: Host) -> str:
    """The host's kernel and hostname, or `Unreachable` with the reason."""
    return _reached(host, "uname -srn").stdout.strip()


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


HostFacts = dict[str, Facts | Unreachable]
"""Each host's facts by name, or why it did not answer."""


def gather(hosts: list[Host], mounts: list[str]) -> HostFacts:
    """Facts of every host, gathered concurrently; a host that did not answer has its `Unreachable`,
    so the others' facts are still judged and reported."""

    def one(host: Host) -> Facts | Unreachable:
        try:
            return facts(host, mounts)
        except Unreachable as e:
            return e

    return dict(zip((h.name for h in hosts), each(hosts, one)))


def _judge(facts: HostFacts, judge: Callable[[Facts], list[tuple[bool, str]]]) -> list[Finding]:
    """`judge` on each host that answered; a failed finding for each host that did not."""
    return [
        Finding(f"host {name}", ok, detail)
        for name, found in facts.items()
        for ok, detail in ([(False, f"does not answer: {found}")] if isinstance(found, Unreachable) else judge(found))
    ]


def cpus(facts: HostFacts, minimum: int) -> list[Finding]:
    return _judge(facts, lambda f: [(f.cpus >= minimum, f"{f.cpus} CPUs (required at least {minimum})")])


def memory(facts: HostFacts, minimum_mb: int) -> list[Finding]:
    return _judge(facts, lambda f: [(f.memory_mb >= minimum_mb,
                                     f"{f.memory_mb} MB memory (required at least {minimum_mb} MB)")])


def disk_space(facts: HostFacts, min_free_percent: float) -> list[Finding]:
    def judge(f: Facts) -> list[tuple[bool, str]]:
        return [
            (False, f"mount {mount} does not exist") if disk is None else
            (disk.free_percent >= min_free_percent,
             f"disk free on {mount} is {disk.free_percent:.1f}% ({disk.available_kb // 1024} MB of "
             f"{disk.total_kb // 1024} MB); required at least {min_free_percent:g}%")
            for mount, disk in f.disks.items()
        ]

    return _judge(facts, judge)


REACHES = """
for target in "$@"; do
  if timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' sh "${target%:*}" "${target##*:}" 2>/dev/null
  then echo yes; else echo no; fi
done
"""


def reaches(host: Host, targets: list[tuple[str, int]]) -> list[Finding]:
    """Whether `host` opens a TCP connection to each `(address, port)` (within about a second each),
    all in one command."""
    subject = f"host {host.name}"
    if not targets:
        return []
    try:
        answers_ = _reached(host, REACHES, *(f"{a}:{p}" for a, p in targets)).stdout.split()
    except Unreachable as e:
        return [Finding(subject, False, f"cannot check {a}:{p}: the host does not answer: {e}") for a, p in targets]
    return [Finding(subject, ok == "yes", f"{'reaches' if ok == 'yes' else 'cannot reach'} {a}:{p}")
            for (a, p), ok in zip(targets, answers_)]


STAT = 'for f in "$@"; do if [ -e "$f" ]; then stat -Lc "%a %U %G" -- "$f"; else echo missing; fi; done'


def required_files(host: Host, files: list[RequiredFile]) -> list[Finding]:
    """Each file present on the host with its mode, owner and group, all read in one command."""
    subject = f"host {host.name}"
    if not files:
        return []
    try:
        lines = _reached(host, STAT, *(f.path for f in files)).stdout.splitlines()
    except Unreachable as e:
        return [Finding(subject, False, f"cannot check {f.path}: the host does not answer: {e}") for f in files]
    found = []
    for file, line in zip(files, lines):
        if line == "missing":
            found.append(Finding(subject, False, f"{file.path} is missing"))
            continue
        mode, owner, group = line.split()
        actual = {"mode": mode.zfill(4), "owner": owner, "group": group}
        wanted = {"mode": file.mode, "owner": file.owner, "group": file.group}
        wrong = [f"{k} is {actual[k]} (required {v})" for k, v in wanted.items() if v is not None and actual[k] != v]
        shown = f"{file.path} (mode {actual['mode']}, owner {owner}:{group})"
        found.append(Finding(subject, not wrong, f"{file.path}: " + "; ".join(wrong) if wrong else f"{shown} as required"))
    return found


WRITE = ('set -e; umask 077; tmp="$1.runbook-$$"; trap \'rm -f -- "$tmp"\' EXIT; cat > "$tmp"; '
         'chmod -- "$2" "$tmp"; mv -f -- "$tmp" "$1"; trap - EXIT')
"""Writes standard input to "$1" with mode "$2": beside it first, then renamed over it."""


def put(host: Host, path: str, data: bytes, mode: int) -> None:
    """Write a file on the host with `mode`, whole or not at all (written beside it, then renamed).

    The content (config files hold passwords) never appears in a command line: on `local://` the engine
    writes it itself, over `ssh://` it goes on ssh's standard input.
    """
    kind = connect(host).backend.get_connection_type()
    if kind == "local":
        temp = f"{path}.runbook-{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temp, path)
        return
    if kind != "ssh":
        raise RunbookError(f"host {host.name}: files are written over ssh:// or local:// only, not {host.spec}")
    argv, name = _ssh(host)
    remote = shlex.join(["sh", "-c", WRITE, "sh", path, f"{mode:04o}"])
    try:
        result = subprocess.run([*argv, name, remote], input=data, capture_output=True,
                                timeout=host.connect_timeout + TRANSFER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"host {host.name}: writing {path} did not finish within "
                           f"{host.connect_timeout + TRANSFER_TIMEOUT} s") from None
    if result.returncode != 0:
        reason = _last_line(result.stderr.decode(errors="replace"), result.returncode)
        raise RunbookError(f"host {host.name}: cannot write {path}: {reason}")


def copy(host: Host, source: Path, destination: str) -> None:
    """Copy a local file to the path `destination` on the host, its folder created; whole or not at all.

    Over `ssh://` it is rsync through the environment's ssh config, on the checks' own connection.
    """
    kind = connect(host).backend.get_connection_type()
    if kind == "local":
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.runbook-{os.getpid()}")
        shutil.copy2(source, temp)
        os.replace(temp, target)
        return
    if kind != "ssh":
        raise RunbookError(f"host {host.name}: files are copied over ssh:// or local:// only, not {host.spec}")
    folder = str(PurePosixPath(destination).parent)
    must(host, 'mkdir -p -- "$1"', folder, what=f"creating {folder}")
    argv, name = _ssh(host)
    result = subprocess.run(
        ["rsync", "--times", f"--timeout={TRANSFER_TIMEOUT}", "-e", shlex.join(argv), "--", str(source),
         f"{name}:{destination}"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:  # rsync's first line says why, its last one only its exit code
        reason = result.stderr.strip().splitlines() or [f"rsync exit code {result.returncode}"]
        raise ActionFailed(f"host {host.name}: copying {source} to {destination} failed: {reason[0]}")


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

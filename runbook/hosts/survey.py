"""What preflight learns about a host, and the judges of it: facts (CPUs, memory, disks) gathered in one
command, reachability, connections to other services, required files.

    >>> survey.gather(env.hosts, ["/"])["web1"].cpus
    2
"""

from dataclasses import dataclass
from typing import Callable

from runbook.config import Environment, Host, RequiredFile
from runbook.findings import Finding
from runbook.hosts.connection import Unreachable, _reached, _reason, each, script


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


def facts(host: Host, mounts: list[str]) -> Facts:
    lines = _reached(host, FACTS, *mounts).stdout.splitlines()
    disks: dict[str, Disk | None] = {}
    for line in lines[2:]:
        mount, *sizes = line.split("\t")
        disks[mount] = Disk(mount, int(sizes[0]), int(sizes[1])) if len(sizes) == 2 else None
    return Facts(cpus=int(lines[0]), memory_mb=int(lines[1]) // 1024, disks=disks)


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


def describe(env: Environment) -> str:
    """The environment and its hosts, one a line, as the report shows them."""
    lines = [f"{env.name}: {env.description}", f"file: {env.source}"]
    return "\n".join(lines + [f"host {h.name} ({h.spec}) roles: {', '.join(h.roles)}" for h in env.hosts])


def reachable(hosts: list[Host]) -> list[Finding]:
    return each(hosts, reachability)


def facts_text(facts: HostFacts) -> str:
    return "\n".join(f"{name}: {'does not answer: ' if isinstance(f, Unreachable) else ''}{f}"
                     for name, f in facts.items())


def required_files_of(env: Environment, files: list[RequiredFile] | None = None) -> list[Finding]:
    """Each host's required files (those of its roles, of `files`, default `env.files`), with their owner and mode."""
    wanted = env.files if files is None else files
    found = each(env.hosts, lambda h: required_files(h, [f for f in wanted if set(f.roles) & set(h.roles)]))
    return [f for per_host in found for f in per_host]

"""What the app's processes use of each host during a load: the service's main process and all its
descendants, read from /proc in one script per host before and one after. Memory is their resident
set sizes added up (an upper bound: shared pages count in each); CPU is their user and system time in
the window over its length on the host's clock (100% = one core busy)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from runbook.config import Environment, Host, Service
from runbook.hosts import connection
from runbook.release import services

T = TypeVar("T")


SNAPSHOT = r"""
main=$("$@" 2>&1)
case $main in
  ''|0|*[!0-9]*) printf '%s\n' "$main"; exit 3 ;;
esac
getconf CLK_TCK
getconf PAGESIZE
cut -d ' ' -f 1 /proc/uptime
for d in /proc/[0-9]*; do
  read -r line 2>/dev/null < "$d/stat" && printf '%s\n' "$line"
done | awk -v main="$main" '
  { rest = $0; sub(/^.*\) /, "", rest); split(rest, f, " "); parent[$1] = f[2]; kept[$1] = f[12] " " f[13] " " f[22] }
  END {
    take[main] = 1
    do { grown = 0; for (p in parent) if (!(p in take) && (parent[p] in take)) { take[p] = 1; grown = 1 } } while (grown)
    for (p in take) if (p in kept) print p, kept[p]
  }'
"""
"""Run with the command printing the service's main pid as arguments. Prints clock ticks per second, the
page size, the host's uptime, then `pid utime stime rss_pages` of the main process and every descendant
(from /proc/<pid>/stat, read after the command name's closing parenthesis). Exit 3: no main process."""


@dataclass(frozen=True)
class Snapshot:
    """The service's processes on one host at one moment."""

    uptime: float
    ticks_per_second: int
    page_size: int
    processes: dict[int, tuple[int, int]]
    """pid: (CPU time in clock ticks, user and system, resident pages)."""

    @property
    def memory_mb(self) -> float:
        return sum(pages for _, pages in self.processes.values()) * self.page_size / 2**20


def parse_snapshot(text: str) -> Snapshot:
    """What `SNAPSHOT` printed."""
    ticks, page_size, uptime, *rows = text.split("\n")
    processes = {}
    for row in filter(None, rows):
        pid, utime, stime, rss = map(int, row.split())
        processes[pid] = (utime + stime, rss)
    return Snapshot(float(uptime), int(ticks), int(page_size), processes)


@dataclass(frozen=True)
class Usage:
    """What the service's processes used of one host during the load."""

    host: str
    service: str
    processes: int
    memory_before_mb: float
    memory_after_mb: float
    cpu_percent: float
    seconds: float

    @property
    def memory_mb(self) -> float:
        """The larger of the two readings."""
        return max(self.memory_before_mb, self.memory_after_mb)

    def __str__(self) -> str:
        return (f"host {self.host}: service {self.service}: {self.processes} processes, "
                f"{self.memory_mb:.1f} MB resident memory ({self.memory_before_mb:.1f} MB before the load, "
                f"{self.memory_after_mb:.1f} MB after), {self.cpu_percent:.1f}% CPU over {self.seconds:.2f} s "
                f"(100% = one core)")


@dataclass(frozen=True)
class Unmeasured:
    """A host where the service's processes could not be read, and why."""

    host: str
    service: str
    reason: str

    def __str__(self) -> str:
        return f"host {self.host}: service {self.service}: not measured: {self.reason}"


def between(host: str, service: str, before: Snapshot | str, after: Snapshot | str) -> Usage | Unmeasured:
    """The use of the window between two snapshots (a string: why that snapshot could not be taken).

    A process already there before adds the CPU time it gained; one started meanwhile adds all of its own.
    """
    if isinstance(before, str) or isinstance(after, str):
        return Unmeasured(host, service, before if isinstance(before, str) else after)
    ticks = 0
    for pid, (cpu, _) in after.processes.items():
        earlier = before.processes.get(pid, (0, 0))[0]
        ticks += cpu - earlier if cpu >= earlier else cpu
    seconds = max(after.uptime - before.uptime, 0.01)
    return Usage(host, service, len(after.processes), before.memory_mb, after.memory_mb,
                 100.0 * ticks / after.ticks_per_second / seconds, seconds)


def snapshot(host: Host, pid_command: list[str]) -> Snapshot | str:
    """The service's processes on the host, or why they could not be read."""
    result = connection.script(host, SNAPSHOT, *pid_command)
    said = (result.stdout or result.stderr or "").strip()
    if result.rc == 3:
        return "not running" if said == "0" else f"no main process id from {pid_command[0]}: {said}"
    if result.rc != 0:
        return f"could not be read: {said.splitlines()[-1] if said else f'exit code {result.rc}'}"
    return parse_snapshot(result.stdout)


def usage(env: Environment, service: Service, during: Callable[[], T]) -> tuple[T, list[Usage | Unmeasured]]:
    """Run `during()` (the load) and measure what `service` used of each of its hosts meanwhile: one
    snapshot of every host at once before, one after."""
    placed = [h for h, s in services.placements(env) if s.name == service.name]
    command = services.pid_command(env, service)
    before = connection.each(placed, lambda h: snapshot(h, command))
    outcome = during()
    after = connection.each(placed, lambda h: snapshot(h, command))
    return outcome, [between(h.name, service.name, b, a) for h, b, a in zip(placed, before, after)]

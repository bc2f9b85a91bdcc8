"""Performance under load (runbook Steps 11 and 20): a short load against the environment's own app once
the release is verified, and what the app's processes used of each host meanwhile.

The load sends GET requests in turn to `performance.paths` on the origin of `endpoints.health`, from
`concurrency` connections at once, until `requests` are sent or `seconds` have passed, whichever comes
first (a request still in flight then may take up to `endpoints.timeout` more). A request fails when it
gets no answer or a status outside 2xx; p95 is taken over the answered requests' latencies, with the
nearest-rank percentile the release watch uses.

Memory and CPU are read on each host of the measured service, in one script before the load and one
after: the service's main process (`supervisorctl pid NAME`, or systemd's MainPID) and all its
descendants. Memory is their resident set sizes added up (pages a worker shares with its parent count
in both: an upper bound); CPU is their user and system time in the window over its length on the
host's clock (100% = one core busy).

    measured = performance.measure(env)
    print(measured.load)      # 150 requests to http://127.0.0.1:8710 (...) in 1.21 s ...; p95 latency 8.1 ms
    performance.latency(measured.load, env.performance.latency_factor, baseline_p95, first_deploy=False)
    performance.memory(measured.usage, env.performance.max_memory_mb)   # a Finding per host
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import requests

from runbook.hosts import connection
from runbook.release import services
from runbook.config import Environment, Host, Service
from runbook.findings import Finding
from runbook.watch.metrics import milliseconds, percent, percentile
from runbook.checks.probes import request_error

T = TypeVar("T")


# --- the load ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the load: its path, status (None: no answer, `error` says why) and latency."""

    path: str
    status: int | None
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        return self.error or f"answered {self.status}"


@dataclass(frozen=True)
class LoadResult:
    """Every request the load sent, and the limits it ran under."""

    origin: str
    paths: tuple[str, ...]
    concurrency: int
    max_requests: int
    max_seconds: float
    answers: tuple[Answer, ...]
    seconds: float
    """From the first request sent to the last answer."""

    @property
    def requests(self) -> int:
        return len(self.answers)

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    @property
    def error_rate(self) -> float | None:
        return len(self.failures) / self.requests if self.requests else None

    @property
    def p95_seconds(self) -> float | None:
        return percentile(0.95, (a.seconds for a in self.answers if a.status is not None))

    def failure_summary(self, most: int = 3) -> str:
        """The commonest failures, e.g. "12 x /health answered 500, 1 x /api/status no answer within 5 s"."""
        counts = Counter(f"{a.path} {a.outcome}" for a in self.failures)
        return ", ".join(f"{n} x {what}" for what, n in counts.most_common(most))

    def __str__(self) -> str:
        stopped = (f"its limit of {self.max_requests} requests" if self.requests >= self.max_requests
                   else f"its limit of {self.max_seconds:g} s")
        rate = self.requests / self.seconds if self.seconds else 0.0
        statuses = Counter("no answer" if a.status is None else str(a.status) for a in self.answers)
        answered = [a.seconds for a in self.answers if a.status is not None]
        lines = [
            f"{self.requests} requests sent to {self.origin} ({', '.join(self.paths)} in turn) from "
            f"{self.concurrency} connections in {self.seconds:.2f} s ({rate:.0f} requests/s); stopped by {stopped}",
            f"answers: {', '.join(f'{n} x {s}' for s, n in sorted(statuses.items())) or 'none'}",
            f"failed: {len(self.failures)}, error rate {percent(self.error_rate)}"
            + (f" ({self.failure_summary()})" if self.failures else ""),
            f"p95 latency: {milliseconds(self.p95_seconds)}"
            + (f" (median {milliseconds(percentile(0.5, answered))}, slowest {milliseconds(max(answered))})" if answered else ""),
        ]
        return "\n".join(lines)


def origin(url: str) -> str:
    """`scheme://host:port` of a URL: where the load goes."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Budget:
    """Hands out request numbers until `requests` are handed out or `seconds` have passed."""

    def __init__(self, requests_: int, seconds: float) -> None:
        self._limit, self._deadline = requests_, time.monotonic() + seconds
        self._next, self._lock = 0, threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._limit or time.monotonic() >= self._deadline:
                return None
            self._next += 1
            return self._next - 1


def load(env: Environment) -> LoadResult:
    """Send the environment's configured load (`performance`) to its own app and time every request."""
    perf = env.performance
    base, timeout = origin(env.endpoints.health), env.endpoints.timeout
    started = time.monotonic()
    budget = _Budget(perf.requests, perf.seconds)

    def connection() -> list[Answer]:
        answers = []
        with requests.Session() as session:
            while (n := budget.take()) is not None:
                answers.append(_get(session, base, perf.paths[n % len(perf.paths)], timeout))
        return answers

    with ThreadPoolExecutor(max_workers=perf.concurrency) as pool:
        sent = [pool.submit(connection) for _ in range(perf.concurrency)]
        answers = tuple(a for future in sent for a in future.result())
    return LoadResult(base, tuple(perf.paths), perf.concurrency, perf.requests, perf.seconds, answers,
                      time.monotonic() - started)


def _get(session: requests.Session, base: str, path: str, timeout: float) -> Answer:
    started = time.perf_counter()
    try:
        status = session.get(base + path, timeout=timeout, allow_redirects=False).status_code
    except requests.RequestException as e:
        return Answer(path, None, time.perf_counter() - started, request_error(e, timeout))
    return Answer(path, status, time.perf_counter() - started)


# --- the app's use of its hosts ----------------------------------------------------------------------

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


def measured_service(env: Environment) -> Service:
    """`performance.service`, else the first service (the environment file is refused without one)."""
    name = env.performance.service
    return next(s for s in env.services if name in (None, s.name))


@dataclass(frozen=True)
class Measurement:
    """The load and what the measured service used of each host meanwhile."""

    load: LoadResult
    service: str
    usage: list[Usage | Unmeasured]

    def usage_text(self) -> str:
        return "\n".join(map(str, self.usage))


def measure(env: Environment) -> Measurement:
    """The environment's configured load, with the memory and CPU of its service on each host."""
    service = measured_service(env)
    result, used = usage(env, service, lambda: load(env))
    return Measurement(result, service.name, used)


# --- judging -----------------------------------------------------------------------------------------


def latency(result: LoadResult, factor: float, baseline_p95: float | None, first_deploy: bool) -> Finding:
    """p95 under load at most `factor` times the pre-deploy baseline's; without a baseline, nothing is
    compared and the finding says why."""
    p95 = result.p95_seconds
    if p95 is None:
        return Finding(result.origin, False, f"none of the {result.requests} requests was answered: no latency to judge")
    measured = f"p95 latency under load {milliseconds(p95)} over {result.requests} requests"
    if baseline_p95 is None:
        why = ("first deploy (no release was live before)" if first_deploy
               else "the release live before answered none of the baseline's requests")
        return Finding(result.origin, True, f"no baseline: {why}; {measured}, not compared")
    limit = factor * baseline_p95
    return Finding(result.origin, p95 <= limit,
                   f"{measured}; limit {factor:g} x baseline {milliseconds(baseline_p95)} = {milliseconds(limit)}")


def error_rate(result: LoadResult, limit: float, baseline: float | None = None) -> Finding:
    """The share of failed requests at most `limit` (the pre-deploy rate, when known, is shown beside it)."""
    if not result.requests:
        return Finding(result.origin, False, "no request was sent")
    before = f"; {percent(baseline)} before the deploy" if baseline is not None else ""
    failed = f": {result.failure_summary()}" if result.failures else ""
    return Finding(result.origin, result.error_rate <= limit,
                   f"{len(result.failures)} of {result.requests} requests failed, error rate "
                   f"{percent(result.error_rate)} (limit {limit * 100:g}%){before}{failed}")


def memory(usages: list[Usage | Unmeasured], limit_mb: int) -> list[Finding]:
    """Per host: the service's resident memory, all processes together, at most `limit_mb`."""
    return _per_host(usages, lambda u: (
        u.memory_mb <= limit_mb,
        f"{u.processes} processes hold {u.memory_mb:.1f} MB resident memory ({u.memory_before_mb:.1f} MB "
        f"before the load, {u.memory_after_mb:.1f} MB after); limit {limit_mb} MB"))


def cpu(usages: list[Usage | Unmeasured], limit_percent: float) -> list[Finding]:
    """Per host: the service's CPU during the load at most `limit_percent` (100 = one core busy)."""
    return _per_host(usages, lambda u: (
        u.cpu_percent <= limit_percent,
        f"{u.processes} processes used {u.cpu_percent:.1f}% CPU over the {u.seconds:.2f} s of load "
        f"(100% = one core busy); limit {limit_percent:g}%"))


def _per_host(usages: list[Usage | Unmeasured], judge: Callable[[Usage], tuple[bool, str]]) -> list[Finding]:
    """`judge` on each host measured; a failed finding for each host that could not be."""
    findings = []
    for u in usages:
        ok, detail = (False, f"not measured: {u.reason}") if isinstance(u, Unmeasured) else judge(u)
        findings.append(Finding(f"host {u.host}", ok, f"service {u.service}: {detail}"))
    return findings


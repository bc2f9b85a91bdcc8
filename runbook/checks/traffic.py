"""The load of performance verification: GET requests in turn to `performance.paths` on the origin of
`endpoints.health`, from `concurrency` connections at once, until `requests` are sent or `seconds`
have passed, whichever comes first. A request fails when it gets no answer or a status outside 2xx."""

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from runbook.checks.probes import request_error
from runbook.config import Environment
from runbook.watch.metrics import milliseconds, percent, percentile
from runbook import http


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
        with http.session(env.endpoints.ca_file) as session:
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
        status = http.request("GET", base + path, timeout=timeout, using=session, allow_redirects=False).status_code
    except requests.RequestException as e:
        return Answer(path, None, time.perf_counter() - started, request_error(e, timeout))
    return Answer(path, status, time.perf_counter() - started)

"""What the release watch measures: a `Sample` each tick, the `Tally` of the requests behind it, and the
`Source` interface the prober and the Prometheus sources share.

    tally = Tally(requests=3, errors=1, latencies=(0.01, 0.02, 0.5))
    (tally + Tally(requests=1)).error_rate   # 0.25: windows merge the tallies of their samples
"""

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import requests

from runbook import http
from runbook.checks.probes import request_error
from runbook.config import Environment
from runbook.secrets import expand, redact
from runbook.times import stamp_ms, utc_now
from runbook.watch import exposition


class Clock(Protocol):
    """UTC time and a way to wait; tests inject one that moves only when told to."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return utc_now()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM = SystemClock()


def percent(rate: float | None) -> str:
    """A share as people read it, e.g. `12.5%`; `n/a` when nothing was measured."""
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def milliseconds(seconds: float | None) -> str:
    """A latency as people read it, e.g. `8.1 ms`; `n/a` when nothing was measured."""
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def percentile(q: float, values: Iterable[float]) -> float | None:
    """The q-quantile by nearest rank: the smallest value with at least q of all values at or below it
    (None without values). The p95 of 20 latencies is the 19th fastest."""
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1] if ordered else None


@dataclass(frozen=True)
class Tally:
    """Requests counted together: how many, how many failed, and their latencies, either each one (the
    prober's) or as the increase of cumulative histogram buckets ({upper bound: count}, Prometheus's)."""

    requests: float = 0
    errors: float = 0
    latencies: tuple[float, ...] = ()
    buckets: Mapping[float, float] = field(default_factory=dict)

    def __add__(self, other: "Tally") -> "Tally":
        buckets = dict(self.buckets)
        for bound, count in other.buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        return Tally(self.requests + other.requests, self.errors + other.errors,
                     self.latencies + other.latencies, buckets)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def p95_seconds(self) -> float | None:
        if self.latencies:
            return percentile(0.95, self.latencies)
        return exposition.histogram_quantile(0.95, dict(self.buckets))


@dataclass(frozen=True)
class Sample:
    """What one source measured at one tick; a None value was not measured, `missing` says why. `tally`
    holds the requests behind it, for windows to merge (None: the source measures its own ranges)."""

    at: datetime
    error_rate: float | None = None
    """Share of failed requests, 0 to 1."""
    p95_seconds: float | None = None
    database_ok: bool | None = None
    missing: str | None = None
    tally: Tally | None = field(default=None, repr=False)

    @classmethod
    def of(cls, at: datetime, tally: Tally, database_ok: bool | None = None, missing: str | None = None) -> "Sample":
        return cls(at, tally.error_rate, tally.p95_seconds, database_ok, missing, tally)

    @property
    def requests(self) -> float | None:
        return None if self.tally is None else self.tally.requests

    def as_record(self) -> dict:
        return {"at": stamp_ms(self.at), "error_rate": self.error_rate, "p95_seconds": self.p95_seconds,
                "database_ok": self.database_ok, "missing": self.missing, "requests": self.requests}


class Source:
    """A source of samples: `begin()` before each series, `sample()` every interval, `end()` after it."""

    def __init__(self, env: Environment, clock: Clock = SYSTEM) -> None:
        self.env, self.clock = env, clock

    @property
    def timeout(self) -> float:
        return self.env.watch.timeout

    def begin(self) -> None:
        """Prepare a new series of samples; nothing to do for a source without memory."""

    def sample(self) -> Sample:
        raise NotImplementedError

    def end(self) -> None:
        """Release what the series held; nothing for a source that holds nothing."""

    def get(self, url: str, **params: str) -> tuple[requests.Response | None, str | None]:
        """GET a configured URL (its secret references resolved): the answer, or why there is none."""
        try:
            return http.request("GET", expand(url), params=params, timeout=self.timeout,
                                ca_file=self.env.endpoints.ca_file, allow_redirects=False), None
        except requests.RequestException as e:
            return None, redact(f"{url} did not answer: {request_error(e, self.timeout)}")

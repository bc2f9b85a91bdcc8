"""Where the release watch (runbook Step 14) gets its numbers: one `Sample` per interval, from one of three
sources behind the same small interface.

- `prober` sends `requests_per_sample` requests itself, in turn to the configured URLs (default: the
  health and status endpoints): a status of 500 or more, or no answer, is an error; p95 is taken over
  the answers' latencies; the database is ok when the health endpoint answers 200.
- `prometheus_text` scrapes the app's `/metrics` page: counters and histograms are cumulative, so the
  error rate and p95 are computed from the *increase* between two consecutive scrapes (a counter that
  went down restarted from zero, as in Prometheus's `rate()`); p95 is interpolated inside its
  histogram bucket, as `exposition.histogram_quantile()` does.
- `prometheus_query` asks a Prometheus server two PromQL expressions through `/api/v1/query`.

A sample that has no data says why in `missing` ("no series ...", the parser's complaint about a
malformed page, an endpoint that did not answer); the watch applies the environment's missing-data rule.

    source = metrics.source(env)
    source.begin()              # before each series of samples: a scrape's reference point
    sample = source.sample()    # Sample(at=..., error_rate=0.02, p95_seconds=0.31, database_ok=True, missing=None)
"""

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families

from runbook.config import Environment, PrometheusQuerySource, PrometheusTextSource, ProberSource
from runbook.checks.probes import request_error, unexpected_status
from runbook.secrets import expand, redact
from runbook.times import stamp_ms, utc_now
from runbook.watch import exposition
from runbook.watch.exposition import Labels
from runbook import http



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


"""Kept for `runbook.engine.run`, which imports it from here; new code uses `runbook.times.stamp_ms`."""


@dataclass(frozen=True)
class Sample:
    """What one source measured at one moment; a None value was not measured, `missing` says why."""

    at: datetime
    error_rate: float | None = None
    """Share of failed requests, 0 to 1."""
    p95_seconds: float | None = None
    database_ok: bool | None = None
    missing: str | None = None

    def as_record(self) -> dict:
        return asdict(self) | {"at": stamp_ms(self.at)}


class Source:
    """A source of samples: `begin()` before each series, then `sample()` every interval."""

    def __init__(self, env: Environment, clock: Clock = SYSTEM) -> None:
        self.env, self.clock = env, clock

    @property
    def timeout(self) -> float:
        return self.env.watch.timeout

    def begin(self) -> None:
        """Prepare a new series of samples; nothing to do for a source without memory."""

    def sample(self) -> Sample:
        raise NotImplementedError

    def get(self, url: str, **params: str) -> tuple[requests.Response | None, str | None]:
        """GET a configured URL (its secret references resolved): the answer, or why there is none."""
        try:
            return http.request("GET", expand(url), params=params, timeout=self.timeout, allow_redirects=False), None
        except requests.RequestException as e:
            return None, redact(f"{url} did not answer: {request_error(e, self.timeout)}")


def percentile(q: float, values: Iterable[float]) -> float | None:
    """The q-quantile by nearest rank: the smallest value with at least q of all values at or below it
    (None without values). The p95 of 20 latencies is the 19th fastest."""
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1] if ordered else None


class Prober(Source):
    """Requests sent by the runbook itself."""

    def sample(self) -> Sample:
        at = self.clock.now()
        config: ProberSource = self.env.watch.source
        urls = config.urls or [self.env.endpoints.health, self.env.endpoints.status]
        count = config.requests_per_sample
        answers = [self._probe(urls[i % len(urls)]) for i in range(count)]
        latencies = [seconds for _, status, seconds in answers if status is not None]
        health = [status for url, status, _ in answers if url == self.env.endpoints.health and status is not None]
        return Sample(
            at,
            error_rate=sum(status is None or status >= 500 for _, status, _ in answers) / count,
            p95_seconds=percentile(0.95, latencies),
            database_ok=all(status == 200 for status in health) if health else None,
        )

    def _probe(self, url: str) -> tuple[str, int | None, float]:
        """(url, status or None when it did not answer, seconds it took)."""
        started = time.perf_counter()
        response, _ = self.get(url)
        return url, response.status_code if response is not None else None, time.perf_counter() - started


@dataclass(frozen=True)
class _Scrape:
    """The cumulative series of one `/metrics` page that the watch reads."""

    requests: dict[Labels, float]
    buckets: dict[Labels, float]


class PrometheusText(Source):
    """The app's `/metrics` page; each sample is the increase since the previous good scrape."""

    def __init__(self, env: Environment, clock: Clock = SYSTEM) -> None:
        super().__init__(env, clock)
        self._previous: _Scrape | None = None

    @property
    def config(self) -> PrometheusTextSource:
        return self.env.watch.source

    @property
    def url(self) -> str:
        if self.config.url:
            return self.config.url
        parts = urlsplit(self.env.endpoints.status)
        return f"{parts.scheme}://{parts.netloc}/metrics"

    def begin(self) -> None:
        self._previous, _ = self._scrape()

    def sample(self) -> Sample:
        at = self.clock.now()
        scrape, missing = self._scrape()
        if scrape is None:
            return Sample(at, missing=missing)
        previous, self._previous = self._previous, scrape
        if previous is None:
            return Sample(at, missing="first scrape: an increase needs an earlier one")
        return self._measure(at, previous, scrape)

    def _scrape(self) -> tuple[_Scrape | None, str | None]:
        response, missing = self.get(self.url)
        if response is None:
            return None, missing
        wrong = unexpected_status(response, 200)
        if wrong:
            return None, f"{self.url} {wrong}"
        try:
            samples = [s for family in text_string_to_metric_families(response.text) for s in family.samples]
        except ValueError as e:
            return None, f"{self.url} is not a valid metrics page: {e}"
        counter = self.config.requests.removesuffix("_total")
        scrape = _Scrape(
            requests=exposition.series(samples, {counter, f"{counter}_total"}),
            buckets=exposition.series(samples, {f"{self.config.latency}_bucket"}),
        )
        if not scrape.requests:
            return None, f"no series {self.config.requests} on {self.url}"
        problem = exposition.bucket_problem(scrape.buckets)
        if problem:
            return None, f"{self.url} is not a valid metrics page: {problem}"
        return scrape, None

    def _measure(self, at: datetime, previous: _Scrape, scrape: _Scrape) -> Sample:
        requests_by_status = exposition.increase(previous.requests, scrape.requests, self.config.status_label)
        total = sum(requests_by_status.values())
        if not total:
            return Sample(at, missing="no requests since the last scrape")
        errors = sum(count for status, count in requests_by_status.items() if status.startswith("5"))
        buckets = exposition.increase(previous.buckets, scrape.buckets, "le")
        p95 = exposition.histogram_quantile(0.95, {float(le): count for le, count in buckets.items()})
        missing = None if p95 is not None else f"no series {self.config.latency}_bucket on {self.url}"
        return Sample(at, error_rate=errors / total, p95_seconds=p95, missing=missing)






class PrometheusQuery(Source):
    """A Prometheus server's instant queries; each gives one number, the worst series when several."""

    def sample(self) -> Sample:
        at = self.clock.now()
        config: PrometheusQuerySource = self.env.watch.source
        error_rate, error_missing = self._query("error rate", config.error_rate)
        if error_rate is not None and not 0 <= error_rate <= 1:
            error_rate, error_missing = None, f"error rate query: {error_rate:g} is not between 0 and 1"
        p95, p95_missing = self._query("p95", config.p95_seconds)
        missing = "; ".join(reason for reason in (error_missing, p95_missing) if reason) or None
        return Sample(at, error_rate=error_rate, p95_seconds=p95, missing=missing)

    def _query(self, name: str, expression: str) -> tuple[float | None, str | None]:
        url = f"{self.env.watch.source.url.rstrip('/')}/api/v1/query"
        response, missing = self.get(url, query=expression)
        if response is None:
            return None, f"{name} query: {missing}"
        wrong = unexpected_status(response, 200)
        if wrong:
            return None, f"{name} query: {url} {wrong}"
        try:
            values = list(exposition.query_values(response.json()))
        except (ValueError, KeyError, TypeError, IndexError):
            return None, f"{name} query: {url} gave an answer that is not a Prometheus query result"
        if not values:
            return None, f"{name} query: no series"
        worst = max(values)
        return (None, f"{name} query: NaN") if math.isnan(worst) else (worst, None)



SOURCES: dict[str, type[Source]] = {
    "prober": Prober,
    "prometheus_text": PrometheusText,
    "prometheus_query": PrometheusQuery,
}


def source(env: Environment, clock: Clock = SYSTEM) -> Source:
    """The source of samples the environment's `watch.source` configures."""
    return SOURCES[env.watch.source.kind](env, clock)

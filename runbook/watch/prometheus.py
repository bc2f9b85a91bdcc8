"""The Prometheus sources of the release watch.

- `prometheus_text` scrapes the app's `/metrics` page: counters and histograms are cumulative, so each
  sample is the *increase* since the previous good scrape (a counter that went down restarted from zero,
  as in Prometheus's `rate()`). A sample's tally holds the increase of requests, errors and latency
  buckets, so a window's error rate and p95 are those of all its requests, as `increase(...[window])` would
  give, p95 interpolated inside its histogram bucket as `histogram_quantile()` does.
- `prometheus_query` asks a Prometheus server two PromQL expressions through `/api/v1/query`; the server
  computes over the range the expressions name (write it as the trigger's window, e.g. `[5m]`), so a
  window reads the latest answer.
"""

import math
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from runbook.checks.probes import unexpected_status
from runbook.config import Environment, ProberSource, PrometheusQuerySource, PrometheusTextSource
from runbook.watch import exposition
from runbook.watch.exposition import Labels
from runbook.watch.prober import Prober
from runbook.watch.samples import SYSTEM, Clock, Sample, Source, Tally


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
        tally = Tally(total, errors, buckets={float(le): count for le, count in buckets.items()})
        missing = None if tally.p95_seconds is not None else f"no series {self.config.latency}_bucket on {self.url}"
        return Sample.of(at, tally, missing=missing)


class _Traffic(Prober):
    """The requests a `prometheus_query` source sends with `traffic`, so that a quiet app has something to measure."""

    @property
    def config(self) -> ProberSource:
        return self.env.watch.source.traffic


class PrometheusQuery(Source):
    """A Prometheus server's instant queries; each gives one number, the worst series when several.
    With `traffic`, the watch also sends requests of its own, as the prober does, while it reads."""

    def __init__(self, env: Environment, clock: Clock = SYSTEM) -> None:
        super().__init__(env, clock)
        self._traffic = _Traffic(env, clock) if env.watch.source.traffic else None

    def begin(self) -> None:
        if self._traffic:
            self._traffic.begin()

    def end(self) -> None:
        if self._traffic:
            self._traffic.end()

    def sample(self) -> Sample:
        if self._traffic:
            self._traffic.sample()
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

"""How the release is measured: metric sources, the watch after a deploy, and the performance check."""

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from runbook.config.base import Model, Name, Url


MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]


class ProberSource(Model):
    """The runbook sends requests itself and measures each one's status and latency (the default)."""

    kind: Literal["prober"] = "prober"
    urls: list[Url] = []
    """URLs requested in turn; none: the environment's health and status endpoints."""
    requests_per_sample: int = Field(10, ge=1, le=1000)


class PrometheusTextSource(Model):
    """The app's own `/metrics` page (Prometheus text exposition), scraped every interval."""

    kind: Literal["prometheus_text"]
    url: Url | None = None
    """None: `/metrics` on the host of the status endpoint."""
    requests: MetricName = "http_requests_total"
    """A counter of answered requests labelled by status."""
    status_label: str = "status"
    latency: MetricName = "http_request_duration_seconds"
    """A histogram of request durations in seconds."""


class PrometheusQuerySource(Model):
    """A Prometheus server asked two PromQL expressions every interval (`/api/v1/query`)."""

    kind: Literal["prometheus_query"]
    url: Url
    """The server's base URL, e.g. `http://prometheus:9090`."""
    error_rate: str = Field(min_length=1)
    """PromQL giving the share of failed requests, 0 to 1."""
    p95_seconds: str = Field(min_length=1)
    """PromQL giving the 95th percentile latency in seconds."""
    traffic: ProberSource | None = None
    """Requests the watch sends itself while it reads the server (their answers are not the measure), for an
    environment without users of its own, e.g. local."""


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _seconds(duration: str) -> float:
    """A PromQL duration (`5m`, `1m30s`, `800ms`) in seconds; NaN when it is not one."""
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", duration)
    if "".join(n + u for n, u in parts) != duration:
        return math.nan
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def _source_kind(value: Any) -> str:
    return value.get("kind", "prober") if isinstance(value, dict) else value.kind


MetricsSource = Annotated[
    Annotated[ProberSource, Tag("prober")]
    | Annotated[PrometheusTextSource, Tag("prometheus_text")]
    | Annotated[PrometheusQuerySource, Tag("prometheus_query")],
    Discriminator(_source_kind),
]
"""One of the three, chosen by `kind`; without one, the prober."""


class MissingData(Model):
    """What a sample without data does: `ignore` leaves it out of the windows (they are judged on the rest),
    `fail` counts it as a failed measurement (a window holding it is inconclusive, never judged). Either
    way, more than `max_missing` missing samples in a row fire the "missing data" trigger."""

    rule: Literal["fail", "ignore"] = "ignore"
    max_missing: int = Field(2, ge=0, le=1000)


class Watch(Model):
    """Runbook Step 14: watch the release after it is verified and roll back on a sustained trigger.

    The defaults are the runbook's production figures; a local environment sets seconds.
    """

    source: MetricsSource = ProberSource()
    interval_seconds: float = Field(15, gt=0, le=3600)
    """Between two samples."""
    baseline_seconds: float = Field(300, gt=0, le=86400)
    """Measured before the deploy: the baseline the release is compared with."""
    bake_seconds: float = Field(900, gt=0, le=86400)
    """How long the release is watched after its verification."""
    error_rate: float = Field(0.05, gt=0, lt=1)
    """Rollback when the share of failed requests among all the requests of the last..."""
    error_window_seconds: float = Field(300, gt=0, le=86400)
    """...this many seconds is above this (also the window of database and critical smoke check failures)."""
    latency_factor: float = Field(2.0, gt=1, le=100)
    """Rollback when the p95 of all the latencies of the last..."""
    latency_window_seconds: float = Field(600, gt=0, le=86400)
    """...this many seconds is above this many times the baseline's p95..."""
    latency_floor_seconds: float = Field(0.05, ge=0, le=60)
    """...and above this: a p95 below it never rolls back, however fast the baseline was."""
    min_requests: int = Field(10, ge=1, le=1_000_000)
    """A window with fewer requests is inconclusive: it is not judged. With the prober, at most half of what
    it sends in the shortest window."""
    missing_data: MissingData = MissingData()
    timeout: float = Field(5, gt=0, le=120)
    """Of each request the watch sends; shorter than `interval_seconds`."""

    @model_validator(mode="after")
    def _windows(self) -> "Watch":
        for key in ("baseline_seconds", "error_window_seconds", "latency_window_seconds"):
            if getattr(self, key) < self.interval_seconds:
                raise ValueError(f"{key} ({getattr(self, key):g}) is shorter than interval_seconds "
                                 f"({self.interval_seconds:g}): it must span at least one interval")
        if self.timeout >= self.interval_seconds:
            raise ValueError(f"timeout ({self.timeout:g}) must be shorter than interval_seconds "
                             f"({self.interval_seconds:g}): a request must end before the next tick")
        shortest = min(self.error_window_seconds, self.latency_window_seconds)
        if isinstance(self.source, ProberSource):
            sent = self.source.requests_per_sample * math.floor(shortest / self.interval_seconds + 1e-9)
            if self.min_requests > sent / 2:
                raise ValueError(f"min_requests ({self.min_requests}) is more than half of what the prober sends in "
                                 f"the shortest window ({sent}: {self.source.requests_per_sample} per interval over "
                                 f"{shortest:g} s): windows would be inconclusive")
        if isinstance(self.source, PrometheusQuerySource):
            for key, window in (("error_rate", self.error_window_seconds), ("p95_seconds", self.latency_window_seconds)):
                ranges = {_seconds(r) for r in re.findall(r"\[([0-9a-z]+)(?::[0-9a-z]*)?\]", getattr(self.source, key))}
                if ranges - {window}:
                    raise ValueError(f"source.{key}: its PromQL ranges ({', '.join(f'{r:g} s' for r in sorted(ranges))}) "
                                     f"must be the window it is judged over ({window:g} s)")
        needed = max(self.error_window_seconds, self.latency_window_seconds) + self.interval_seconds
        if self.bake_seconds < needed:
            raise ValueError(f"bake_seconds ({self.bake_seconds:g}) must be at least the longest window plus one "
                             f"interval ({needed:g}), or a trigger could never fire")
        return self


class Performance(Model):
    """Runbook Steps 11 and 20: a short load against the environment's own endpoints once the release is
    verified, bounded both in requests and in seconds, with limits on latency, errors and the app's use
    of its host."""

    paths: list[Annotated[str, Field(pattern=r"^/")]] = Field(["/health", "/api/status"], min_length=1)
    """Paths on the origin of `endpoints.health`: the load never leaves the environment's own app."""
    requests: int = Field(200, ge=1, le=100_000)
    seconds: float = Field(10, gt=0, le=600)
    concurrency: int = Field(4, ge=1, le=64)
    latency_factor: float = Field(2.0, gt=1, le=100)
    """p95 latency under load may be at most this many times the baseline's p95."""
    max_error_rate: float = Field(0.01, ge=0, lt=1)
    max_memory_mb: int | None = Field(None, ge=1)
    """Resident memory of the service's processes on each host, all processes together."""
    max_cpu_percent: float | None = Field(None, gt=0, le=10_000)
    """CPU of the service's processes on each host during the load (100 = one core busy)."""
    service: Name | None = None
    """Whose processes are measured; the first service when omitted."""

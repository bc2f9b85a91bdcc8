"""Runbook Step 13: the Prometheus server that watches the release, what it scrapes, and the alerts it holds."""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from runbook.config.base import Model, Name, Url
from runbook.config.observation import MetricName

Alert = Literal["error_rate", "latency", "database_connections", "memory", "cpu"]
"""The runbook's triggers (Steps 14 and 20): error rate, p95 latency against the baseline, database
connection failures, and the app's memory and CPU use."""

Target = Annotated[str, Field(pattern=r"^[A-Za-z0-9.\[\]:-]+:[0-9]{1,5}$")]
"""A scrape target as Prometheus writes it: `host:port` (its page is `/metrics`)."""


class Metrics(Model):
    """The names of the app's series the alert rules and the watch's queries read."""

    requests: MetricName = "http_requests_total"
    """A counter of answered requests, labelled `status`."""
    latency: MetricName = "http_request_duration_seconds"
    """A histogram of request durations in seconds."""
    database_failures: MetricName = "database_connection_failures_total"
    """A counter of failed attempts to connect to the database."""
    memory: MetricName = "process_resident_memory_bytes"
    """A gauge of the resident memory of an instance."""
    cpu: MetricName = "process_cpu_seconds_total"
    """A counter of the CPU seconds an instance used."""


class Monitoring(Model):
    """The Prometheus server of the environment. Its alert rules are rendered from the environment's
    thresholds (`watch` and `performance`); Step 13 checks it scrapes the release and holds those rules."""

    url: Url
    """The server's base URL, e.g. `http://prometheus:9090`."""
    app_job: Name = "app"
    """The scrape job of the app's instances: the series the alerts read."""
    jobs: dict[Name, list[Target]] = {}
    """The targets the server must scrape, by job (on local, the scrape configuration itself);
    empty: every active target of `app_job`, at least one."""
    alerts: list[Alert] = ["error_rate", "latency", "database_connections", "memory", "cpu"]
    """Which of the runbook's triggers the server must hold as alert rules."""
    metrics: Metrics = Metrics()
    group: Name = "runbook"
    """The rule group the alerts are rendered into."""

    @model_validator(mode="after")
    def _app_job(self) -> "Monitoring":
        if self.jobs and self.app_job not in self.jobs:
            raise ValueError(f"app_job {self.app_job!r} is not one of the jobs {sorted(self.jobs)}")
        if len(set(self.alerts)) != len(self.alerts):
            raise ValueError(f"alerts: each alert once, got {self.alerts}")
        return self

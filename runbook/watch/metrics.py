"""Where the release watch (runbook Step 14) gets its numbers: one `Sample` per tick from one of three
sources behind the same small interface (`samples.Source`): the active prober (`prober.py`, the default),
the app's Prometheus `/metrics` page or a Prometheus server's query API (`prometheus.py`).

A sample that has no data says why in `missing` ("no series ...", the parser's complaint about a
malformed page, an endpoint that did not answer); the watch applies the environment's missing-data rule.

    source = metrics.source(env)
    source.begin()              # before each series of samples: a scrape's reference point, the prober's threads
    sample = source.sample()    # Sample(at=..., error_rate=0.02, p95_seconds=0.31, database_ok=True, missing=None)
    source.end()
"""

from runbook.config import Environment
from runbook.watch.prober import Prober
from runbook.watch.prometheus import PrometheusQuery, PrometheusText
from runbook.watch.samples import SYSTEM, Clock, Sample, Source, milliseconds, percent, percentile

__all__ = ["SYSTEM", "Clock", "Sample", "Source", "milliseconds", "percent", "percentile", "source"]

SOURCES: dict[str, type[Source]] = {
    "prober": Prober,
    "prometheus_text": PrometheusText,
    "prometheus_query": PrometheusQuery,
}


def source(env: Environment, clock: Clock = SYSTEM) -> Source:
    """The source of samples the environment's `watch.source` configures."""
    return SOURCES[env.watch.source.kind](env, clock)

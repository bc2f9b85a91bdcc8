"""The release watch's part of the record (Steps 14 and 20): the baseline measured before the deploy and
the bake window after it, every sample and the trigger that fired, as parts of `Record`.
"""

from typing import Annotated, Any, Literal

from pydantic import Field

from runbook.record.facts import Part
from runbook.times import STAMP_MS_PATTERN

StampMs = Annotated[str, Field(pattern=STAMP_MS_PATTERN)]
"""A UTC time to the millisecond, e.g. `2026-11-28T09:30:00.250Z`."""


class Sample(Part):
    """What the watch measured at one moment; a null value was not measured, `missing` says why."""

    at: StampMs
    """When the sample was taken."""
    error_rate: float | None
    """The share of failed requests, 0 to 1."""
    p95_seconds: float | None
    """The 95th percentile of request latency."""
    database_ok: bool | None
    """Whether the health endpoint said the database answers."""
    missing: str | None
    """Why the sample has no data; null when it has."""
    requests: float | None = None
    """How many requests the sample counted (the prober's that finished since the previous sample, or the
    increase of the app's counter); null where the source does not count them (a Prometheus query)."""


class Seen(Part):
    holds: bool | None
    """Whether the trigger's condition held over its window at this tick; null: nothing to judge (the window
    not yet full, inconclusive, no data)."""
    saw: str
    """What the trigger saw in its window, e.g. `error rate 12.0% of 240 requests`."""


class Observation(Sample):
    """A sample of the bake window, and what each trigger saw in it."""

    smoke_ok: bool | None
    """Whether the critical smoke check passed then; null when none is configured."""
    seen: dict[str, Seen]
    """Each trigger's judgement of the sample, by trigger name."""


class Trigger(Part):
    """A trigger that fired: the rollback's evidence."""

    trigger: str
    """Which trigger: error rate, database, smoke, latency or missing data."""
    condition: str
    """The condition that held, e.g. `error rate 12.0% of 240 requests > 5% over 5 min`."""
    since: StampMs
    """The start of the window the condition held over (of the run of samples without data)."""
    fired_at: StampMs
    """When it fired."""
    samples: list[Observation]
    """The samples of that window."""


class Baseline(Part):
    """The release serving before the deploy, measured before anything changed (Step 20)."""

    error_rate: float | None
    """The mean error rate of its samples; null when none had data."""
    p95_seconds: float | None
    """The median p95 latency of its samples; null when none had data."""
    samples: list[Sample]
    """Every sample of the baseline."""


class Bake(Part):
    """The bake window after the verification (Step 14): every sample, and the trigger that fired, if one did."""

    outcome: Literal["passed", "fired"]
    """passed: no trigger fired; fired: one did, and the rollback followed."""
    started: StampMs
    """When the watch began."""
    finished: StampMs
    """When it ended: at the end of the window, or when a trigger fired."""
    settings: dict[str, Any]
    """The environment's `watch` settings the release was judged by."""
    baseline: Baseline
    """The baseline the release was compared with."""
    fired: Trigger | None
    """The trigger that fired; null when none did."""
    samples: list[Observation]
    """Every sample of the bake window."""
    chart: str
    """The chart of the window in the run folder (`bake.svg`)."""

"""Watching the release (runbook Step 14): a baseline measured before the deploy, then a bake after the
verification that rolls back on a sustained trigger.

A trigger fires only when its condition held on every sample of its whole window, in a row:

| trigger        | condition                                   | sustained for            |
| -------------- | ------------------------------------------- | ------------------------ |
| `error rate`   | error rate above `error_rate`               | `error_window_seconds`   |
| `database`     | the health endpoint says the database fails | `error_window_seconds`   |
| `smoke`        | the critical smoke check fails              | `error_window_seconds`   |
| `latency`      | p95 above `latency_factor` x baseline p95   | `latency_window_seconds` |
| `missing data` | a sample without data                       | `max_missing` + 1 samples |

A sample without a value for a trigger follows `missing_data.rule`: `ignore` skips it (it neither holds
nor breaks the window), `fail` counts it as a failed measurement, which breaks the window.

From a deploy pipeline:

    source = metrics.source(env)
    before = watch.baseline(env, source)                  # while the old release serves
    ...                                                   # switch, migrate, start, verify
    result = watch.bake(env, source, before, smoke=critical_journey_passes)
    if result.fired:                                      # e.g. "error rate: error rate 12.0% > 5% for 5 min"
        roll_back(reason=str(result.fired))
    facts["bake"] = result.as_record() | {"chart": "bake.svg"}

Time comes from a `metrics.Clock`; tests inject one whose `sleep` only moves it forward.
"""

import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import requests

from runbook.config import Environment, Watch
from runbook.errors import CheckFailed
from runbook.times import stamp_ms
from runbook.watch.metrics import SYSTEM, Clock, Sample, Source, percent

SmokeCheck = Callable[[], bool]
"""A critical smoke check: True when it passes (raising CheckFailed or a request error is failing)."""


@dataclass(frozen=True)
class Baseline:
    """The old release measured before the deploy: mean error rate and median p95 of its samples."""

    error_rate: float | None
    p95_seconds: float | None
    samples: list[Sample]

    def as_record(self) -> dict:
        return {"error_rate": self.error_rate, "p95_seconds": self.p95_seconds,
                "samples": [s.as_record() for s in self.samples]}


@dataclass(frozen=True)
class Seen:
    """What one trigger saw in one sample: whether its condition held (None: nothing to judge)."""

    holds: bool | None
    text: str
    value: float | None = None


@dataclass(frozen=True)
class Observation:
    """One sample of the bake, the smoke check's result then, and what each trigger saw in them."""

    sample: Sample
    smoke_ok: bool | None
    seen: dict[str, Seen]

    def as_record(self) -> dict:
        seen = {name: {"holds": s.holds, "saw": s.text} for name, s in self.seen.items()}
        return self.sample.as_record() | {"smoke_ok": self.smoke_ok, "seen": seen}


@dataclass(frozen=True)
class Trigger:
    """A trigger that fired: its condition, the samples that held it, when it became true and when it fired."""

    name: str
    condition: str
    samples: list[Observation]
    since: datetime
    fired_at: datetime

    def __str__(self) -> str:
        return f"{self.name}: {self.condition}"

    def as_record(self) -> dict:
        return {"trigger": self.name, "condition": self.condition, "since": stamp_ms(self.since),
                "fired_at": stamp_ms(self.fired_at), "samples": [o.as_record() for o in self.samples]}


@dataclass(frozen=True)
class BakeResult:
    """Every sample of the bake and the trigger that fired, if one did."""

    watch: Watch
    baseline: Baseline
    samples: list[Observation]
    fired: Trigger | None
    started: datetime
    finished: datetime

    def as_record(self) -> dict:
        """The watch's part of `record.json`."""
        return {
            "outcome": "passed" if self.fired is None else "fired",
            "started": stamp_ms(self.started),
            "finished": stamp_ms(self.finished),
            "settings": self.watch.model_dump(mode="json"),
            "baseline": self.baseline.as_record(),
            "fired": self.fired.as_record() if self.fired else None,
            "samples": [o.as_record() for o in self.samples],
        }


class _Rule(ABC):
    """A trigger's rule: what it sees in a sample, when a run of holding samples is long enough to fire."""

    name: str

    @abstractmethod
    def judge(self, sample: Sample, smoke_ok: bool | None) -> Seen: ...

    @abstractmethod
    def complete(self, held: list[Observation]) -> bool: ...

    @abstractmethod
    def condition(self, held: list[Observation]) -> str:
        """E.g. "error rate 12.0% > 5% for 5 min" (the lowest value of the run: every sample was above it)."""


class _Sustained(_Rule):
    """A condition that must hold for a whole window of time."""

    def __init__(self, name: str, window: float) -> None:
        self.name, self.window = name, window

    def complete(self, held: list[Observation]) -> bool:
        return _lasted(held) >= self.window


class _Above(_Sustained):
    """A measured value above a limit, e.g. error rate above 5%."""

    def __init__(self, name: str, window: float, label: str, read: Callable[[Sample], float | None],
                 limit: float | None, limit_text: str, show: Callable[[float], str]) -> None:
        super().__init__(name, window)
        self.label, self.read, self.limit, self.limit_text, self.show = label, read, limit, limit_text, show

    def judge(self, sample: Sample, smoke_ok: bool | None) -> Seen:
        value = self.read(sample)
        if value is None:
            return Seen(None, f"{self.label}: no data")
        if self.limit is None:
            return Seen(None, f"{self.label} {self.show(value)}: no baseline to compare with", value)
        return Seen(value > self.limit, f"{self.label} {self.show(value)}", value)

    def condition(self, held: list[Observation]) -> str:
        lowest = min(o.seen[self.name].value for o in held)
        return f"{self.label} {self.show(lowest)} > {self.limit_text} for {_duration(_lasted(held))}"


class _Failing(_Sustained):
    """Something that answers ok or not, e.g. the database behind the health endpoint."""

    def __init__(self, name: str, window: float, label: str,
                 read: Callable[[Sample, bool | None], bool | None]) -> None:
        super().__init__(name, window)
        self.label, self.read = label, read

    def judge(self, sample: Sample, smoke_ok: bool | None) -> Seen:
        ok = self.read(sample, smoke_ok)
        if ok is None:
            return Seen(None, f"{self.label}: not measured")
        return Seen(not ok, f"{self.label} {'ok' if ok else 'failing'}")

    def condition(self, held: list[Observation]) -> str:
        return f"{self.label} failing for {_duration(_lasted(held))}"


class _Missing(_Rule):
    """Samples without data, more than `max_missing` in a row."""

    name = "missing data"

    def __init__(self, max_missing: int) -> None:
        self.max_missing = max_missing

    def judge(self, sample: Sample, smoke_ok: bool | None) -> Seen:
        return Seen(sample.missing is not None, sample.missing or "data")

    def complete(self, held: list[Observation]) -> bool:
        return len(held) > self.max_missing

    def condition(self, held: list[Observation]) -> str:
        count = f"{len(held)} sample{'' if len(held) == 1 else 's'}"
        return f"no data in {count} in a row (at most {self.max_missing} allowed): {held[-1].sample.missing}"


def _rules(watch: Watch, baseline: Baseline) -> list[_Rule]:
    """The triggers in the order they are reported when several fire on the same sample."""
    p95 = baseline.p95_seconds
    latency_limit = None if p95 is None else watch.latency_factor * p95
    return [
        _Above("error rate", watch.error_window_seconds, "error rate", lambda s: s.error_rate, watch.error_rate,
               f"{watch.error_rate * 100:g}%", percent),
        _Failing("database", watch.error_window_seconds, "database connection", lambda s, _: s.database_ok),
        _Failing("smoke", watch.error_window_seconds, "critical smoke check", lambda _, ok: ok),
        _Above("latency", watch.latency_window_seconds, "p95 latency", lambda s: s.p95_seconds, latency_limit,
               f"{watch.latency_factor:g} x baseline {_seconds(p95 or 0)}", _seconds),
        _Missing(watch.missing_data.max_missing),
    ]


def baseline(env: Environment, source: Source, *, clock: Clock = SYSTEM) -> Baseline:
    """Measure the release that serves now for `watch.baseline_seconds`, a sample every interval."""
    samples = list(_samples(env, source, env.watch.baseline_seconds, clock))
    error_rates = [s.error_rate for s in samples if s.error_rate is not None]
    latencies = [s.p95_seconds for s in samples if s.p95_seconds is not None]
    return Baseline(statistics.fmean(error_rates) if error_rates else None,
                    statistics.median(latencies) if latencies else None, samples)


def bake(env: Environment, source: Source, baseline: Baseline, *, smoke: SmokeCheck | None = None,
         stop_early: bool = True, clock: Clock = SYSTEM) -> BakeResult:
    """Watch the new release for `watch.bake_seconds`, a sample every interval, until a trigger fires
    (or to the end with `stop_early=False`, the first trigger that fired being the one reported)."""
    rules = _rules(env.watch, baseline)
    held: dict[str, list[Observation]] = {rule.name: [] for rule in rules}
    observations: list[Observation] = []
    fired = None
    started = clock.now()
    for sample in _samples(env, source, env.watch.bake_seconds, clock):
        smoke_ok = _passes(smoke) if smoke else None
        observation = Observation(sample, smoke_ok, {rule.name: rule.judge(sample, smoke_ok) for rule in rules})
        observations.append(observation)
        for rule in rules:
            trigger = _advance(rule, held[rule.name], observation, env.watch.missing_data.rule)
            fired = fired or trigger
        if fired and stop_early:
            break
    return BakeResult(env.watch, baseline, observations, fired, started, clock.now())


def _advance(rule: _Rule, held: list[Observation], observation: Observation, missing_rule: str) -> Trigger | None:
    """Extend or break the rule's run of holding samples; the trigger when the run is long enough."""
    seen = observation.seen[rule.name]
    if seen.holds is None and missing_rule == "ignore":
        return None
    if not seen.holds:
        held.clear()
        return None
    held.append(observation)
    if not rule.complete(held):
        return None
    return Trigger(rule.name, rule.condition(held), list(held), held[0].sample.at, observation.sample.at)


def _samples(env: Environment, source: Source, seconds: float, clock: Clock) -> Iterator[Sample]:
    """A sample every `watch.interval_seconds` for `seconds`; one that overruns skips the ticks it missed."""
    interval = env.watch.interval_seconds
    ticks = math.floor(seconds / interval + 1e-9)
    source.begin()
    start = clock.now()
    tick = 1
    while tick <= ticks:
        clock.sleep(tick * interval - (clock.now() - start).total_seconds())
        yield source.sample()
        tick = max(tick + 1, math.floor((clock.now() - start).total_seconds() / interval) + 1)


def _passes(smoke: SmokeCheck) -> bool:
    try:
        return bool(smoke())
    except (CheckFailed, requests.RequestException):
        return False


def _lasted(held: list[Observation]) -> float:
    return (held[-1].sample.at - held[0].sample.at).total_seconds()


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 120 else f"{seconds / 60:.3g} min"


def _seconds(value: float) -> str:
    return f"{value:.3f} s"

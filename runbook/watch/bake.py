"""Watching the release (runbook Step 14): a baseline measured before the deploy, then a bake after the
verification that rolls back when a trigger's condition holds over its whole window (`windows.py`), or
when more than `missing_data.max_missing` samples in a row have no data ("missing data").

Ticks come every `watch.interval_seconds` on a fixed cadence from the start: a late tick runs at once,
none is skipped. The critical smoke check runs in a thread of its own; each tick takes the result that
finished since the previous one, so a slow check never holds a tick.

From a deploy pipeline:

    source = metrics.source(env)
    before = bake.baseline(env, source)                    # while the old release serves
    ...                                                    # switch, migrate, start, verify
    result = bake.bake(env, source, before, smoke=critical_journey_passes)
    if result.fired:                                       # e.g. "error rate: error rate 12.0% of 240 requests > 5% over 5 min"
        roll_back(reason=str(result.fired))

Time comes from a `samples.Clock`; tests inject one whose `sleep` only moves it forward.
"""

import contextlib
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests

from runbook.config import Environment, Watch
from runbook.errors import CheckFailed
from runbook.times import stamp_ms
from runbook.watch.samples import SYSTEM, Clock, Sample, Source
from runbook.watch.windows import Rule, Seen, Window, measure, triggers

SmokeCheck = Callable[[], bool]
"""A critical smoke check: True when it passes (raising CheckFailed or a request error is failing)."""
Left = Callable[[int], None]
"""Told, before each tick, how many samples are left to take, that one included (the live line's counter)."""

MISSING = "missing data"


@dataclass(frozen=True)
class Baseline:
    """The old release measured before the deploy: error rate and p95 of all its requests together."""

    error_rate: float | None
    p95_seconds: float | None
    samples: list[Sample]

    def as_record(self) -> dict:
        return {"error_rate": self.error_rate, "p95_seconds": self.p95_seconds,
                "samples": [s.as_record() for s in self.samples]}


@dataclass(frozen=True)
class Observation:
    """One tick of the bake: its sample, the smoke check that finished then, and what each trigger saw."""

    sample: Sample
    smoke_ok: bool | None
    seen: dict[str, Seen]

    def as_record(self) -> dict:
        seen = {name: {"holds": s.holds, "saw": s.text} for name, s in self.seen.items()}
        return self.sample.as_record() | {"smoke_ok": self.smoke_ok, "seen": seen}


@dataclass(frozen=True)
class Trigger:
    """A trigger that fired: its condition, the ticks of the window it held over, the window's start and
    when it fired."""

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
    """Every tick of the bake and the trigger that fired, if one did."""

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


def baseline(env: Environment, source: Source, *, clock: Clock = SYSTEM, left: Left | None = None) -> Baseline:
    """Measure the release that serves now for `watch.baseline_seconds`, a sample every interval."""
    with contextlib.closing(_samples(env, source, env.watch.baseline_seconds, clock, left)) as ticks:
        samples = list(ticks)
    measured = measure(samples)
    return Baseline(measured.error_rate, measured.p95_seconds, samples)


def bake(env: Environment, source: Source, baseline: Baseline, *, smoke: SmokeCheck | None = None,
         stop_early: bool = True, clock: Clock = SYSTEM, left: Left | None = None) -> BakeResult:
    """Watch the new release for `watch.bake_seconds`, a tick every interval, until a trigger fires (or to
    the end with `stop_early=False`, the first trigger that fired being the one reported)."""
    watch = env.watch
    rules = triggers(watch, baseline.p95_seconds)
    observations: list[Observation] = []
    fired = None
    started = clock.now()
    with _Smoke(smoke) as checks, contextlib.closing(_samples(env, source, watch.bake_seconds, clock, left)) as ticks:
        for sample in ticks:
            smoke_ok = checks.take()
            seen, windows = {}, {}
            for rule in rules:
                windows[rule.name] = _window(watch, rule.seconds, observations, sample, smoke_ok)
                full = (sample.at - started).total_seconds() >= rule.seconds - 1e-6
                seen[rule.name] = rule.judge(windows[rule.name]) if full else Seen(None, "window not yet full")
            missing = _missing_run(observations, sample)
            seen[MISSING] = Seen(sample.missing is not None, sample.missing or "data")
            observation = Observation(sample, smoke_ok, seen)
            observations.append(observation)
            fired = fired or _fired(rules, windows, seen, observations, watch.missing_data.max_missing, missing)
            if fired and stop_early:
                break
    return BakeResult(watch, baseline, observations, fired, started, clock.now())


def _window(watch: Watch, seconds: float, observations: list[Observation], sample: Sample,
            smoke_ok: bool | None) -> Window:
    """The last `seconds` of ticks up to this sample."""
    since = sample.at - timedelta(seconds=seconds)
    ticked = [(o.sample, o.smoke_ok) for o in observations if o.sample.at > since] + [(sample, smoke_ok)]
    return Window(seconds, [s for s, _ in ticked], [ok for _, ok in ticked if ok is not None],
                  watch.missing_data.rule, watch.min_requests)


def _missing_run(observations: list[Observation], sample: Sample) -> int:
    """How many samples in a row, this one included, had no data."""
    if sample.missing is None:
        return 0
    run = 1
    for o in reversed(observations):
        if o.sample.missing is None:
            break
        run += 1
    return run


def _fired(rules: list[Rule], windows: dict[str, Window], seen: dict[str, Seen], observations: list[Observation],
           max_missing: int, missing: int) -> Trigger | None:
    """The first trigger whose condition held at this tick."""
    now = observations[-1].sample.at
    for rule in rules:
        if seen[rule.name].holds:
            since = now - timedelta(seconds=rule.seconds)
            held = [o for o in observations if o.sample.at > since]
            return Trigger(rule.name, rule.condition(windows[rule.name]), held, since, now)
    if missing > max_missing:
        run = observations[-missing:]
        count = f"{missing} sample{'' if missing == 1 else 's'}"
        condition = f"no data in {count} in a row (at most {max_missing} allowed): {run[-1].sample.missing}"
        return Trigger(MISSING, condition, run, run[0].sample.at, now)
    return None


def _samples(env: Environment, source: Source, seconds: float, clock: Clock, left: Left | None) -> Iterator[Sample]:
    """A sample every `watch.interval_seconds` for `seconds`, on a fixed cadence: a late tick runs at once."""
    interval = env.watch.interval_seconds
    ticks = math.floor(seconds / interval + 1e-9)
    source.begin()
    try:
        start = clock.now()
        for tick in range(1, ticks + 1):
            if left is not None:
                left(ticks - tick + 1)
            clock.sleep(tick * interval - (clock.now() - start).total_seconds())
            yield source.sample()
    finally:
        source.end()


class _Smoke:
    """The critical smoke check in a thread of its own, started again as soon as it has answered."""

    def __init__(self, check: SmokeCheck | None) -> None:
        self.check = check
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="smoke") if check else None
        self.running: Future | None = None

    def __enter__(self) -> "_Smoke":
        if self.pool:
            self.running = self.pool.submit(_passes, self.check)
        return self

    def __exit__(self, *_) -> None:
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def take(self) -> bool | None:
        """The result of the check that finished since the previous tick, if one did; the next is started."""
        if self.running is None or not self.running.done():
            return None
        ok = self.running.result()
        self.running = self.pool.submit(_passes, self.check)
        return ok


def _passes(smoke: SmokeCheck) -> bool:
    try:
        return bool(smoke())
    except (CheckFailed, requests.RequestException):
        return False

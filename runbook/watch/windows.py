"""The rollback triggers (runbook Step 14), each judged every tick over the whole of its sliding window:
the samples of its last N seconds taken together, their requests counted as one (error rate of all of
them, p95 of all their latencies), never sample by sample.

| trigger        | condition over the window                                        | window                   |
| -------------- | ---------------------------------------------------------------- | ------------------------ |
| `error rate`   | failed requests / requests above `error_rate`                    | `error_window_seconds`   |
| `database`     | every health answer says the database fails                      | `error_window_seconds`   |
| `smoke`        | every critical smoke check failed                                | `error_window_seconds`   |
| `latency`      | p95 above `latency_factor` x baseline p95 and `latency_floor_seconds` | `latency_window_seconds` |

A window is judged once the bake has lasted its length. It is inconclusive (neither holds nor clears)
with fewer than `min_requests` requests, or, under `missing_data.rule: fail`, with a sample without data
in it; under `ignore` such a sample is left out. A source whose samples carry no tally (a Prometheus
query computes its own range) is judged on its latest answer.

    rules = windows.triggers(env.watch, baseline)
    seen = rules[0].judge(windows.Window(5.0, samples, smoke=[True, True]))   # Seen(holds=False, text=...)
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from runbook.config import Watch
from runbook.watch.samples import Sample, Tally, percent


@dataclass(frozen=True)
class Measure:
    """Error rate and p95 of samples taken together, and how many requests that was (None: not counted)."""

    error_rate: float | None
    p95_seconds: float | None
    requests: float | None


def measure(samples: list[Sample]) -> Measure:
    """All the requests of these samples counted together; for samples without a tally, the latest values."""
    tallies = [s.tally for s in samples if s.tally is not None]
    if tallies:
        tally = sum(tallies, Tally())
        return Measure(tally.error_rate, tally.p95_seconds, tally.requests)
    latest = {key: next((getattr(s, key) for s in reversed(samples) if getattr(s, key) is not None), None)
              for key in ("error_rate", "p95_seconds")}
    return Measure(latest["error_rate"], latest["p95_seconds"], None)


@dataclass(frozen=True)
class Window:
    """A trigger's last `seconds`: its samples and the critical smoke checks that finished in it."""

    seconds: float
    samples: list[Sample]
    smoke: list[bool] = field(default_factory=list)
    missing_rule: str = "ignore"
    min_requests: int = 1

    @cached_property
    def measure(self) -> Measure:
        return measure(self.samples)

    def inconclusive(self) -> str | None:
        """Why the window cannot be judged, or None."""
        if self.missing_rule == "fail" and any(s.missing for s in self.samples):
            return "a sample without data in the window (missing_data: fail)"
        requests = self.measure.requests
        if requests is not None and requests < self.min_requests:
            return f"{requests:g} requests in {_duration(self.seconds)} (at least {self.min_requests} needed)"
        return None


@dataclass(frozen=True)
class Seen:
    """What one trigger saw in its window at one tick: whether its condition held (None: nothing to judge)."""

    holds: bool | None
    text: str


@dataclass(frozen=True)
class Rule:
    """A trigger: its name, its window and how it judges it."""

    name: str
    seconds: float
    judge: Callable[[Window], Seen]
    condition: Callable[[Window], str]
    """E.g. "error rate 12.0% of 240 requests > 5% over 5 min"."""


def above(label: str, read: Callable[[Measure], float | None], limit: float | None, limit_text: str,
          show: Callable[[float], str]) -> tuple[Callable[[Window], Seen], Callable[[Window], str]]:
    """Judge and condition of a measured value above a limit, e.g. the error rate above 5%."""

    def seen(window: Window) -> str:
        value, requests = read(window.measure), window.measure.requests
        counted = "" if requests is None else f" of {requests:g} requests"
        return f"{label} {show(value)}{counted}"

    def judge(window: Window) -> Seen:
        reason = window.inconclusive()
        if reason:
            return Seen(None, f"{label}: inconclusive, {reason}")
        value = read(window.measure)
        if value is None:
            return Seen(None, f"{label}: no data")
        if limit is None:
            return Seen(None, f"{seen(window)}: no baseline to compare with")
        return Seen(value > limit, seen(window))

    return judge, lambda window: f"{seen(window)} > {limit_text} over {_duration(window.seconds)}"


def failing(label: str, read: Callable[[Window], list[bool]]) -> tuple[Callable[[Window], Seen],
                                                                        Callable[[Window], str]]:
    """Judge and condition of something that answers ok or not: it holds when every answer in the window failed."""

    def judge(window: Window) -> Seen:
        answers = read(window)
        if not answers:
            return Seen(None, f"{label}: not measured")
        failed = sum(not ok for ok in answers)
        return Seen(failed == len(answers), f"{label} failing in {failed} of {len(answers)}")

    return judge, lambda window: f"{label} failing in every check over {_duration(window.seconds)}"


def latency_limit(watch: Watch, baseline_p95: float | None) -> float | None:
    """The p95 above which the latency trigger holds: `latency_factor` x the baseline's, at least the floor."""
    return None if baseline_p95 is None else max(watch.latency_factor * baseline_p95, watch.latency_floor_seconds)


def triggers(watch: Watch, baseline_p95: float | None) -> list[Rule]:
    """The triggers in the order they are reported when several fire at the same tick."""
    limit = latency_limit(watch, baseline_p95)
    limit_text = (f"{watch.latency_factor:g} x baseline {_seconds(baseline_p95 or 0)}"
                  f" (at least {_seconds(watch.latency_floor_seconds)})")
    errors, latency = watch.error_window_seconds, watch.latency_window_seconds
    return [
        Rule("error rate", errors, *above("error rate", lambda m: m.error_rate, watch.error_rate,
                                          f"{watch.error_rate * 100:g}%", percent)),
        Rule("database", errors, *failing("database connection",
                                          lambda w: [s.database_ok for s in w.samples if s.database_ok is not None])),
        Rule("smoke", errors, *failing("critical smoke check", lambda w: w.smoke)),
        Rule("latency", latency, *above("p95 latency", lambda m: m.p95_seconds, limit, limit_text, _seconds)),
    ]


def _duration(seconds: float) -> str:
    return f"{seconds:.3g} s" if seconds < 120 else f"{seconds / 60:.3g} min"


def _seconds(value: float) -> str:
    return f"{value:.3f} s"

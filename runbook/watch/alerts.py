"""The runbook's triggers (Steps 14 and 20) as Prometheus alert rules, rendered from the environment file.

Each rule reads the app's series (`monitoring.metrics`, job `monitoring.app_job`) over the window the
release watch judges the same trigger on, with the watch's and the performance check's thresholds:

- error rate: the share of 5xx answers among all the requests of `watch.error_window_seconds`;
- latency: their p95 over `watch.latency_window_seconds` above `watch.latency_factor` times the p95 of
  the `watch.baseline_seconds` before that window, and above `watch.latency_floor_seconds`;
- database connections: any failed connection to the database in the error window;
- memory and CPU: an instance above `performance.max_memory_mb` / `performance.max_cpu_percent`.

The same functions write the queries a `prometheus_query` watch may ask, so both read alike.
"""

from dataclasses import dataclass
from decimal import Decimal

import yaml

from runbook.config import Environment, Monitoring


_UNITS = (("y", 365 * 86_400_000, True), ("w", 7 * 86_400_000, True), ("d", 86_400_000, False),
          ("h", 3_600_000, False), ("m", 60_000, False), ("s", 1000, False), ("ms", 1, False))


def duration(seconds: float) -> str:
    """A PromQL duration written as Prometheus writes it back (`5m`, `1m30s`, `800ms`), so a loaded rule's
    expression reads exactly as rendered."""
    ms, text = round(seconds * 1000), ""
    for unit, size, whole_only in _UNITS:
        if ms >= size and not (whole_only and ms % size):
            text, ms = text + f"{ms // size}{unit}", ms % size
    return text or "0s"


def number(value: float) -> str:
    """A PromQL number written as Prometheus writes it back (Go's `%v`: `0.05`, `190`, `4.194304e+08`)."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    text, power = "".join(map(str, digits)), len(digits) + exponent - 1
    if -4 <= power < 6:
        body = format(Decimal(repr(abs(float(value)))).normalize(), "f")
    else:
        body = f"{text[0]}{'.' + text[1:] if len(text) > 1 else ''}e{'+' if power >= 0 else '-'}{abs(power):02d}"
    return ("-" if sign else "") + body


def _of(m: Monitoring, metric: str, matchers: str = "") -> str:
    return f'{metric}{{job="{m.app_job}"{matchers}}}'


def error_rate(m: Monitoring, window: float) -> str:
    """PromQL: the share of the app's answers in the last `window` seconds that were server errors (0 while
    there is no series of errors yet, none while there is no answer at all)."""
    errors, answers = _of(m, m.metrics.requests, ',status=~"5.."'), _of(m, m.metrics.requests)
    return f"(sum(rate({errors}[{duration(window)}])) or vector(0)) / sum(rate({answers}[{duration(window)}]))"


def p95(m: Monitoring, window: float, before: float = 0, matchers: str = "") -> str:
    """PromQL: the p95 latency of the app's answers over `window` seconds, ending `before` seconds ago
    (`matchers`, e.g. `,handler=~"health|status"`: of those answers only)."""
    offset = f" offset {duration(before)}" if before else ""
    return (f"histogram_quantile(0.95, sum by (le) "
            f"(rate({_of(m, m.metrics.latency + '_bucket', matchers)}[{duration(window)}]{offset})))")


@dataclass(frozen=True)
class Rule:
    """One alert rule as Prometheus holds it."""

    alert: str
    expr: str
    summary: str

    def as_dict(self) -> dict:
        return {"alert": self.alert, "expr": self.expr, "labels": {"severity": "critical", "source": "runbook"},
                "annotations": {"summary": self.summary}}


ALERT_NAMES = {"error_rate": "ErrorRateHigh", "latency": "LatencyHigh",
               "database_connections": "DatabaseConnectionFailures", "memory": "MemoryHigh", "cpu": "CpuHigh"}
"""The name each of the runbook's triggers has as an alert rule."""


def alert_rules(env: Environment) -> list[Rule]:
    """The alert rules `monitoring.alerts` asks for, in that order."""
    m, w, perf = env.monitoring, env.watch, env.performance
    errors, latency = w.error_window_seconds, w.latency_window_seconds
    now = p95(m, latency)
    build = {
        "error_rate": lambda: Rule(ALERT_NAMES["error_rate"], f"{error_rate(m, errors)} > {number(w.error_rate)}",
                                   f"error rate above {w.error_rate:.0%} over {duration(errors)} (Step 14)"),
        "latency": lambda: Rule(
            ALERT_NAMES["latency"],
            f"{now} > {number(w.latency_factor)} * {p95(m, w.baseline_seconds, before=latency)} "
            f"and {now} > {number(w.latency_floor_seconds)}",
            f"p95 latency over {duration(latency)} above {w.latency_factor:g}x the baseline (Step 14)"),
        "database_connections": lambda: Rule(
            ALERT_NAMES["database_connections"],
            f"sum(increase({_of(m, m.metrics.database_failures)}[{duration(errors)}])) > 0",
            f"the app failed to connect to its database in the last {duration(errors)} (Step 14)"),
        "memory": lambda: Rule(
            ALERT_NAMES["memory"], f"max by (instance) ({_of(m, m.metrics.memory)}) > {number(perf.max_memory_mb * 2**20)}",
            f"an instance uses more than {perf.max_memory_mb} MB of memory (Step 20)"),
        "cpu": lambda: Rule(
            ALERT_NAMES["cpu"],
            f"max by (instance) (rate({_of(m, m.metrics.cpu)}[{duration(errors)}])) * 100 > {number(perf.max_cpu_percent)}",
            f"an instance uses more than {perf.max_cpu_percent:g}% CPU (Step 20)"),
    }
    return [build[name]() for name in m.alerts]


def rules_file(env: Environment) -> str:
    """The Prometheus rules file of the environment's alerts: one group, `monitoring.group`."""
    group = {"name": env.monitoring.group, "rules": [rule.as_dict() for rule in alert_rules(env)]}
    return yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1000)

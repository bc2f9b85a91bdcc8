"""Steps 13, 14 and 20: the serving release's baseline before any change, and the bake window after."""

from runbook import console
from runbook.checks import smoke
from runbook.engine import warmup
from runbook.engine.deployment import Deployment
from runbook.errors import ActionFailed
from runbook.watch import bake, charts, metrics


def measure_baseline(d: Deployment) -> list[str]:
    """Error rate and p95 latency of the release serving now, before any change."""
    warmup.settle()
    d.baseline = bake.baseline(d.env, metrics.source(d.env), left=_left)
    d.run.facts["baseline"] = d.baseline.as_record()
    rate, p95 = d.baseline.error_rate, d.baseline.p95_seconds
    return [f"baseline over {d.env.watch.baseline_seconds:g} s: error rate {metrics.percent(rate)}, "
            f"p95 latency {metrics.milliseconds(p95)} ({len(d.baseline.samples)} samples)"]


def bake_release(d: Deployment) -> list[str]:
    """Watch the verified release against its baseline; a trigger holding over its window fails the phase."""
    env = d.env
    before = d.baseline or bake.baseline(env, metrics.source(env), left=_left)
    smoke_check = (lambda: bool(smoke.log_in(env))) if env.endpoints.smoke else None
    warmup.settle()
    charts.agg_pyplot()  # before the window, not in it
    result = bake.bake(env, metrics.source(env), before, smoke=smoke_check, left=_left)
    (d.run.folder / "bake.svg").write_text(charts.bake_chart(before, result, env))
    d.run.facts["bake"] = result.as_record() | {"chart": "bake.svg"}
    summary = f"{len(result.samples)} samples over {env.watch.bake_seconds:g} s at most"
    if result.fired:
        raise ActionFailed(f"trigger fired: {result.fired} (over the window since "
                           f"{result.fired.as_record()['since']}); {summary}")
    return [f"no trigger fired: {summary}"]


def _left(samples: int) -> None:
    """The live line's counter while a baseline or a bake samples."""
    console.current().count(f"{samples} sample{'' if samples == 1 else 's'} left")

"""Watching the release (runbook Step 14): baseline, bake and its rollback triggers judged over whole
windows, against real servers on 127.0.0.1 that answer like a release going wrong, an app's `/metrics` page
or Prometheus; and the window evaluation alone (samples in, verdict out).

Most tests run on the machine's clock with windows of a fraction of a second; the rest inject a clock that
moves only when the watch sleeps, to run the runbook's production figures (minutes) in an instant.
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from runbook import config
from runbook.engine import sequences
from runbook.errors import CheckFailed, ConfigError
from runbook.watch import bake, charts, metrics
from runbook.watch.samples import Sample, Tally
from runbook.watch.windows import Window, triggers

from .test_metrics import PROMETHEUS_TEXT, TEXT_SOURCE, Reply, Script, exposition, load, pages, prometheus, serve

FAST = {"interval_seconds": 0.2, "baseline_seconds": 0.4, "bake_seconds": 4, "error_window_seconds": 0.6,
        "latency_window_seconds": 0.6, "timeout": 0.15, "min_requests": 4, "latency_floor_seconds": 0.15}
"""Short windows on the machine's clock: a trigger is judged over its last 3 ticks. The latency floor is the
timeout, so a loaded machine's slow answers never fire the latency trigger of a test about something else
(the latency test lowers it)."""


def release(fails: Callable[[int], bool] = lambda n: False, delay: float = 0.0, health: int = 200) -> Script:
    """An app answering 500 to the n-th request (from its deploy) when `fails(n)`, else 200 (its health
    endpoint: `health`), each after `delay` seconds."""

    def script(path: str, n: int) -> Reply:
        status = 500 if fails(n) else health if path == "/health" else 200
        return Reply(status, delay=delay)

    return script


class FakeClock:
    """UTC time that moves only when the watch sleeps."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=max(0.0, seconds))


def deploy_and_bake(make_env, settings: dict, old: Script, new: Script, clock: metrics.Clock = metrics.SYSTEM,
                    smoke: bake.SmokeCheck | None = None) -> tuple[bake.BakeResult, str]:
    """Baseline against the `old` release, deploy the `new` one, bake it: the result and its chart."""
    with serve(old) as app:
        env = load(make_env, settings, app.url)
        source = metrics.source(env, clock)
        before = bake.baseline(env, source, clock=clock)
        app.deploy(new)
        result = bake.bake(env, source, before, smoke=smoke, clock=clock)
    return result, charts.bake_chart(before, result, env)


def held(result: bake.BakeResult, trigger: str) -> list[bool | None]:
    return [o.seen[trigger].holds for o in result.samples]


def test_an_error_rate_rising_after_a_delay_fires_the_error_trigger_over_its_window(make_env) -> None:
    settings = FAST | {"source": {"requests_per_sample": 4}}
    # after 12 requests, every status request (1 in 2) answers 500
    result, chart = deploy_and_bake(make_env, settings, release(), release(lambda n: n >= 12 and n % 2 == 1))

    fired = result.fired
    assert fired.name == "error rate"
    assert fired.condition.startswith("error rate ") and " requests > 5% over 0.6 s" in fired.condition
    assert fired.samples == [o for o in result.samples if o.sample.at > fired.since]
    assert fired.fired_at == result.samples[-1].sample.at
    record = json.loads(json.dumps(result.as_record()))
    assert record["outcome"] == "fired" and record["fired"]["trigger"] == "error rate"
    assert record["baseline"]["error_rate"] == 0.0
    assert all(s["requests"] is not None for s in record["samples"])
    assert chart.startswith("<svg") and "fired: error rate: error rate " in chart


def test_release_slower_than_the_latency_limit_fires_the_latency_trigger(make_env) -> None:
    settings = FAST | {"latency_floor_seconds": 0.05, "source": {"requests_per_sample": 4}}
    result, chart = deploy_and_bake(make_env, settings, release(delay=0.005), release(delay=0.1))

    fired = result.fired
    assert fired.name == "latency"
    assert f"> 2 x baseline {result.baseline.p95_seconds:.3f} s (at least 0.050 s) over 0.6 s" in fired.condition
    assert not any(held(result, "error rate"))
    assert "fired: latency" in chart


def test_errors_whose_share_of_the_window_stays_under_the_threshold_fire_nothing(make_env) -> None:
    settings = FAST | {"bake_seconds": 2, "error_rate": 0.5, "source": {"requests_per_sample": 4}}
    # 4 requests in a row answer 500: a blip, a fifth of a window's requests
    result, chart = deploy_and_bake(make_env, settings, release(), release(lambda n: 8 <= n < 12))

    assert result.fired is None
    assert any(o.sample.error_rate for o in result.samples)  # the blip was seen
    assert result.as_record()["outcome"] == "passed"
    assert "no trigger fired" in chart


@pytest.mark.parametrize(("rule", "max_missing"), [("ignore", 2), ("fail", 0)])
def test_a_metrics_endpoint_that_stops_answering_fires_missing_data_by_the_rule(make_env, rule: str,
                                                                               max_missing: int) -> None:
    first, second, third = (exposition({"200": n}, {"0.1": n, "+Inf": n}) for n in (10, 20, 30))
    settings = FAST | {"source": TEXT_SOURCE, "missing_data": {"rule": rule, "max_missing": max_missing}}
    with serve(pages(first, second, third)) as app:
        env = load(make_env, settings | {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}})
        source = metrics.source(env)
        before = bake.baseline(env, source)
        app.deploy(pages(first, second, third, None))  # two good scrapes after the reference one, then no answer
        result = bake.bake(env, source, before)

    fired = result.fired
    assert fired.name == "missing data"
    assert [o.sample.missing is None for o in result.samples] == [True, True] + [False] * (max_missing + 1)
    assert fired.samples == result.samples[2:]
    assert f"no data in {max_missing + 1} sample" in fired.condition
    assert f"(at most {max_missing} allowed): {app.url}/metrics did not answer" in fired.condition
    assert result.as_record()["fired"]["samples"][0]["missing"].startswith(f"{app.url}/metrics did not answer")
    assert "no data" in charts.bake_chart(before, result, env)


def test_a_prometheus_query_without_series_is_missing_data_and_reported(make_env) -> None:
    queries = {"error_rate": "sum(rate(errors_total[600ms])) / sum(rate(requests_total[600ms]))",
               "p95_seconds": "histogram_quantile(0.95, sum by (le) (rate(latency_bucket[600ms])))"}
    with serve(prometheus({queries["error_rate"]: [], queries["p95_seconds"]: []})) as server:
        env = load(make_env, FAST | {"source": {"kind": "prometheus_query", "url": server.url, **queries}})
        source = metrics.source(env)
        before = bake.baseline(env, source)
        result = bake.bake(env, source, before)

    assert (before.error_rate, before.p95_seconds) == (None, None)
    assert result.fired.name == "missing data"
    assert len(result.fired.samples) == 3
    reason = "error rate query: no series; p95 query: no series"
    assert result.fired.condition == f"no data in 3 samples in a row (at most 2 allowed): {reason}"
    assert result.as_record()["samples"][0]["missing"] == reason


def traffic(*steps: str | None) -> Script:
    """The `/metrics` page of an app whose traffic between two scrapes is a step: "ok" (10 requests answered
    200) or "bad" (5 of 10 answered 500); None: the page does not answer."""

    def script(path: str, n: int) -> Reply | None:
        if steps[n] is None:
            return None
        done = steps[: n + 1]
        ok, errors = 10 * done.count("ok") + 5 * done.count("bad"), 5 * done.count("bad")
        return Reply(body=exposition({"200": ok, "500": errors}, {"0.1": ok + errors, "+Inf": ok + errors}),
                     content_type=PROMETHEUS_TEXT)

    return script


@pytest.mark.parametrize(("rule", "fired_at", "requests"), [("ignore", 2, 20), ("fail", 5, 30)])
def test_a_missing_sample_is_left_out_by_ignore_and_makes_its_windows_inconclusive_under_fail(
        make_env, rule: str, fired_at: int, requests: int) -> None:
    settings = {"source": TEXT_SOURCE, "interval_seconds": 10, "baseline_seconds": 10, "bake_seconds": 100,
                "error_window_seconds": 30, "latency_window_seconds": 30,
                "missing_data": {"rule": rule, "max_missing": 1}}
    # from the deploy: half the requests fail, and the third scrape after the reference one gets no answer
    failing = ("ok", "bad", "bad", None, "bad", "bad", "bad", "bad", "bad", "bad", "bad")
    with serve(traffic("ok", "ok")) as app:
        env = load(make_env, settings | {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}})
        clock = FakeClock()
        source = metrics.source(env, clock)
        before = bake.baseline(env, source, clock=clock)
        app.deploy(traffic(*failing))
        result = bake.bake(env, source, before, clock=clock)

    assert held(result, "error rate")[:2] == [None, None]  # the window is not yet full
    assert result.fired.name == "error rate"
    assert result.fired.fired_at == result.samples[fired_at].sample.at == result.samples[-1].sample.at
    assert result.fired.since == result.fired.fired_at - timedelta(seconds=30)
    assert result.fired.condition == f"error rate 50.0% of {requests} requests > 5% over 30 s"


@pytest.mark.parametrize(("steps", "rate"), [(("bad",), "50.0%"), (("ok", "bad"), "25.0%")], ids=["steady", "flapping"])
def test_production_figures_judge_five_minutes_of_requests_on_an_injected_clock(make_env, steps: tuple,
                                                                                 rate: str) -> None:
    clock = FakeClock()
    settings = {"source": TEXT_SOURCE}
    # every 15 s interval is a step: failing half of its requests, or failing and fine in turn
    with serve(traffic("ok", "ok")) as app:
        env = load(make_env, settings | {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}})
        source = metrics.source(env, clock)
        before = bake.baseline(env, source, clock=clock)
        app.deploy(traffic("ok", *steps * 40))
        result = bake.bake(env, source, before, clock=clock)

    assert result.watch.interval_seconds == 15 and result.watch.error_window_seconds == 300
    assert not any(held(result, "error rate")[:19])  # a 5-minute window is judged once 5 minutes have passed
    assert result.fired.name == "error rate"
    assert result.fired.fired_at == result.samples[19].sample.at == result.started + timedelta(minutes=5)
    assert len(result.fired.samples) == 20
    assert result.fired.condition.startswith(f"error rate {rate} of ") and "> 5% over 5 min" in result.fired.condition


def smoke_refused() -> bool:
    raise CheckFailed("POST /api/login answered 503 (expected 200)")


@pytest.mark.parametrize(("old", "new", "smoke", "trigger", "condition"), [
    (release(), release(health=503), None, "database", "database connection failing in every check over 0.6 s"),
    (release(), release(), smoke_refused, "smoke", "critical smoke check failing in every check over 0.6 s"),
], ids=["database", "smoke"])
def test_database_and_critical_smoke_failures_fire_over_the_error_window(make_env, old: Script, new: Script, smoke,
                                                                         trigger: str, condition: str) -> None:
    settings = FAST | {"error_rate": 0.6, "min_requests": 2, "source": {"requests_per_sample": 2}}  # health: 1 in 2
    result, _ = deploy_and_bake(make_env, settings, old, new, smoke=smoke)

    assert result.fired.name == trigger
    assert result.fired.condition == condition


def sample(requests: int = 0, errors: int = 0, latencies: tuple[float, ...] = (), missing: str | None = None,
           database_ok: bool | None = None) -> Sample:
    at = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    return Sample.of(at, Tally(requests, errors, latencies), database_ok, missing)


WATCH = config.Watch(interval_seconds=1, baseline_seconds=5, bake_seconds=10, error_window_seconds=5,
                     latency_window_seconds=5, timeout=0.5, min_requests=10, latency_floor_seconds=0.1)


def judged(name: str, *samples: Sample, rule: str = "ignore", baseline_p95: float | None = 0.02):
    (trigger,) = [t for t in triggers(WATCH, baseline_p95) if t.name == name]
    return trigger.judge(Window(5, list(samples), missing_rule=rule, min_requests=WATCH.min_requests))


def test_a_window_counts_all_its_requests_together_not_sample_by_sample() -> None:
    # two good samples around a bad one: 6 failed of 30 requests, 20% (no sample "resets" the window)
    seen = judged("error rate", sample(12, 0), sample(6, 6), sample(12, 0))
    assert (seen.holds, seen.text) == (True, "error rate 20.0% of 30 requests")
    # one failed request in 30 is 3.3%
    assert judged("error rate", sample(10, 0), sample(10, 1), sample(10, 0)).holds is False


def test_a_window_with_fewer_requests_than_min_requests_is_inconclusive() -> None:
    seen = judged("error rate", sample(4, 4), sample(5, 5))
    assert seen.holds is None
    assert seen.text == "error rate: inconclusive, 9 requests in 5 s (at least 10 needed)"


def test_a_sample_without_data_is_left_out_by_ignore_and_makes_the_window_inconclusive_under_fail() -> None:
    samples = (sample(10, 5), sample(missing="no answer"), sample(10, 5))
    assert judged("error rate", *samples).holds is True
    seen = judged("error rate", *samples, rule="fail")
    assert seen.holds is None and "a sample without data in the window (missing_data: fail)" in seen.text


def test_the_window_p95_pools_every_latency_and_never_falls_under_the_floor() -> None:
    fast = tuple([0.01] * 18)
    # 2 slow requests in 20: p95 is the 19th fastest, slow; each sample's own p95 alone would be fast for one
    seen = judged("latency", sample(18, 0, fast), sample(2, 0, (0.5, 0.5)))
    assert (seen.holds, seen.text) == (True, "p95 latency 0.500 s of 20 requests")
    # 2 x a baseline of 20 ms is 40 ms, but the floor is 100 ms
    assert judged("latency", sample(20, 0, tuple([0.08] * 20))).holds is False
    assert judged("latency", sample(20, 0, fast), baseline_p95=None).holds is None


def test_database_trigger_holds_only_when_every_health_answer_in_the_window_failed() -> None:
    assert judged("database", sample(2, 1, database_ok=False), sample(2, 1, database_ok=False)).holds is True
    assert judged("database", sample(2, 1, database_ok=False), sample(2, 0, database_ok=True)).holds is False


@pytest.mark.parametrize(("watch_section", "problem"), [
    ({"interval_seconds": 10, "error_window_seconds": 5},
     "error_window_seconds (5) is shorter than interval_seconds (10): it must span at least one interval"),
    ({"bake_seconds": 300}, "bake_seconds (300) must be at least the longest window plus one interval (615)"),
    ({"interval_seconds": 1, "error_window_seconds": 5, "latency_window_seconds": 5, "bake_seconds": 6},
     "timeout (5) must be shorter than interval_seconds (1): a request must end before the next tick"),
    ({"min_requests": 101}, "min_requests (101) is more than half of what the prober sends in the shortest window "
                            "(200: 10 per interval over 300 s)"),
    ({"min_requests": 0}, "watch.min_requests"),
    ({"latency_floor_seconds": -1}, "watch.latency_floor_seconds"),
    ({"window": 5}, "watch.window"),
    ({"missing_data": {"rule": "retry"}}, "watch.missing_data.rule"),
    ({"source": {"kind": "prometheus_query", "url": "http://127.0.0.1:9090"}},
     "watch.source.prometheus_query.error_rate"),
    ({"error_rate": 5}, "watch.error_rate"),
])
def test_bad_watch_settings_are_refused_naming_the_key(make_env, watch_section: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match="watch") as refused:
        config.load_environment(str(make_env({"watch": watch_section})))
    assert problem in str(refused.value)


def test_the_defaults_are_the_runbooks_production_figures() -> None:
    defaults = config.Watch()
    assert (defaults.source.kind, defaults.error_rate, defaults.error_window_seconds, defaults.latency_factor,
            defaults.latency_window_seconds) == ("prober", 0.05, 300, 2.0, 600)
    assert (defaults.missing_data.rule, defaults.missing_data.max_missing) == ("ignore", 2)
    assert (defaults.min_requests, defaults.latency_floor_seconds, defaults.timeout) == (10, 0.05, 5)


def _warming(phases: list) -> list[str]:
    return [p.name for i, p in enumerate(phases) if sequences.waits_before_bake(p, phases[i + 1:])]


def test_pyplot_is_imported_while_a_deploy_waits_for_its_checks_after_the_baseline_never_in_a_watch_only_run():
    env = config.load_environment("environments/local.yaml")
    deploy = sequences.deploy_sequence(env)
    names = [p.name for p in deploy]
    between = deploy[names.index("baseline") + 1:names.index("bake")]
    assert _warming(deploy) == [p.name for p in between if p.feature] and "verification" in _warming(deploy)
    assert _warming(sequences.WATCH) == _warming(sequences.GATE) == _warming(sequences.rollback_sequence(env)) == []

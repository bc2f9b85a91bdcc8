"""Watching the release (runbook Step 14): baseline, bake and its sustained rollback triggers, against
real servers on 127.0.0.1 that answer like a release going wrong, an app's `/metrics` page or Prometheus.

Most tests run on the machine's clock with windows of a fraction of a second; the rest inject a clock that
moves only when the watch sleeps, to run the runbook's production figures (minutes) in an instant.
"""

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from runbook.watch import charts, metrics, windows
from runbook import config
from runbook.errors import CheckFailed, ConfigError

from .test_metrics import PROMETHEUS_TEXT, TEXT_SOURCE, Reply, Script, exposition, load, pages, prometheus, serve

FAST = {"interval_seconds": 0.2, "baseline_seconds": 0.4, "bake_seconds": 4, "error_window_seconds": 0.6,
        "latency_window_seconds": 0.6, "timeout": 2}
"""Short windows on the machine's clock: a trigger fires after its condition held for 3 intervals."""


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
                    smoke: windows.SmokeCheck | None = None) -> tuple[windows.BakeResult, str]:
    """Baseline against the `old` release, deploy the `new` one, bake it: the result and its chart."""
    with serve(old) as app:
        env = load(make_env, settings, app.url)
        source = metrics.source(env, clock)
        before = windows.baseline(env, source, clock=clock)
        app.deploy(new)
        result = windows.bake(env, source, before, smoke=smoke, clock=clock)
    return result, charts.bake_chart(before, result, env)


def held(result: windows.BakeResult, trigger: str) -> list[bool | None]:
    return [o.seen[trigger].holds for o in result.samples]


def test_error_rate_rising_after_a_delay_fires_the_error_trigger_with_its_samples(make_env) -> None:
    settings = FAST | {"source": {"requests_per_sample": 4}}
    # 3 samples of 4 requests are fine, then every status request (1 in 2) answers 500
    result, chart = deploy_and_bake(make_env, settings, release(), release(lambda n: n >= 12 and n % 2 == 1))

    fired = result.fired
    assert fired.name == "error rate"
    assert held(result, "error rate")[:4] == [False, False, False, True]
    assert fired.since == result.samples[3].sample.at
    assert fired.samples == result.samples[3:]
    assert len(fired.samples) >= 3 and all(o.sample.error_rate == 0.5 for o in fired.samples)
    assert fired.condition.startswith("error rate 50.0% > 5% for ")
    record = json.loads(json.dumps(result.as_record()))
    assert record["outcome"] == "fired"
    assert record["fired"]["trigger"] == "error rate"
    saw = [s["seen"]["error rate"]["saw"] for s in record["fired"]["samples"]]
    assert saw == ["error rate 50.0%"] * len(fired.samples)
    assert record["baseline"]["error_rate"] == 0.0
    assert chart.startswith("<svg") and "fired: error rate: error rate 50.0% &gt; 5%" in chart


def test_release_slower_than_twice_the_baseline_fires_the_latency_trigger(make_env) -> None:
    settings = FAST | {"interval_seconds": 0.4, "baseline_seconds": 0.8, "latency_window_seconds": 0.8,
                       "error_window_seconds": 0.8, "source": {"requests_per_sample": 2}}
    result, chart = deploy_and_bake(make_env, settings, release(delay=0.01), release(delay=0.12))

    fired = result.fired
    assert fired.name == "latency"
    limit = 2 * result.baseline.p95_seconds
    assert all(o.sample.p95_seconds > limit for o in fired.samples) and len(fired.samples) >= 3
    assert f"> 2 x baseline {result.baseline.p95_seconds:.3f} s for " in fired.condition
    assert not any(held(result, "error rate"))
    assert "fired: latency" in chart


def test_a_blip_shorter_than_the_window_fires_nothing(make_env) -> None:
    settings = FAST | {"bake_seconds": 2, "source": {"requests_per_sample": 4}}
    # every request of the 3rd and 4th samples answers 500, then the release recovers
    result, chart = deploy_and_bake(make_env, settings, release(), release(lambda n: 8 <= n < 16))

    assert result.fired is None
    assert held(result, "error rate")[:5] == [False, False, True, True, False]
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
        before = windows.baseline(env, source)
        app.deploy(pages(first, second, third, None))  # two good scrapes after the reference one, then no answer
        result = windows.bake(env, source, before)

    fired = result.fired
    assert fired.name == "missing data"
    assert [o.sample.missing is None for o in result.samples] == [True, True] + [False] * (max_missing + 1)
    assert fired.samples == result.samples[2:]
    assert f"no data in {max_missing + 1} sample" in fired.condition
    assert f"(at most {max_missing} allowed): {app.url}/metrics did not answer" in fired.condition
    assert result.as_record()["fired"]["samples"][0]["missing"].startswith(f"{app.url}/metrics did not answer")
    assert "no data" in charts.bake_chart(before, result, env)


def test_a_prometheus_query_without_series_is_missing_data_and_reported(make_env) -> None:
    queries = {"error_rate": "sum(rate(errors_total[1m])) / sum(rate(requests_total[1m]))",
               "p95_seconds": "histogram_quantile(0.95, sum by (le) (rate(latency_bucket[1m])))"}
    with serve(prometheus({queries["error_rate"]: [], queries["p95_seconds"]: []})) as server:
        env = load(make_env, FAST | {"source": {"kind": "prometheus_query", "url": server.url, **queries}})
        source = metrics.source(env)
        before = windows.baseline(env, source)
        result = windows.bake(env, source, before)

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


@pytest.mark.parametrize(("rule", "since", "fired_at"), [("ignore", 0, 3), ("fail", 3, 6)])
def test_a_missing_sample_is_skipped_by_ignore_and_breaks_the_window_under_fail(make_env, rule: str, since: int,
                                                                                 fired_at: int) -> None:
    settings = {"source": TEXT_SOURCE, "interval_seconds": 10, "baseline_seconds": 10, "bake_seconds": 100,
                "error_window_seconds": 30, "latency_window_seconds": 30,
                "missing_data": {"rule": rule, "max_missing": 1}}
    # from the deploy: half the requests fail, and the third scrape after the reference one gets no answer
    failing = ("ok", "bad", "bad", None, "bad", "bad", "bad", "bad", "bad", "bad", "bad")
    with serve(traffic("ok", "ok")) as app:
        env = load(make_env, settings | {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}})
        clock = FakeClock()
        source = metrics.source(env, clock)
        before = windows.baseline(env, source, clock=clock)
        app.deploy(traffic(*failing))
        result = windows.bake(env, source, before, clock=clock)

    assert held(result, "error rate")[:4] == [True, True, None, True]
    assert result.fired.name == "error rate"
    assert result.fired.since == result.samples[since].sample.at
    assert result.fired.fired_at == result.samples[fired_at].sample.at == result.samples[-1].sample.at
    assert result.fired.condition == "error rate 50.0% > 5% for 30 s"


def test_production_figures_sustain_five_minutes_of_errors_on_an_injected_clock(make_env) -> None:
    clock = FakeClock()
    # 2 requests a sample: every request fails for 20 samples (4 min 45 s), then 2 samples are fine, then all fail
    result, _ = deploy_and_bake(make_env, {"source": {"requests_per_sample": 2}}, release(),
                                release(lambda n: n < 40 or n >= 44), clock=clock)

    assert result.watch.interval_seconds == 15 and result.watch.error_window_seconds == 300
    assert all(held(result, "error rate")[:20]) and not any(held(result, "error rate")[20:22])
    assert result.fired.name == "error rate"
    assert result.fired.since == result.samples[22].sample.at
    assert result.fired.fired_at == result.samples[42].sample.at == result.fired.since + timedelta(minutes=5)
    assert result.fired.condition == "error rate 100.0% > 5% for 5 min"


def smoke_refused() -> bool:
    raise CheckFailed("POST /api/login answered 503 (expected 200)")


@pytest.mark.parametrize(("old", "new", "smoke", "trigger", "condition"), [
    (release(), release(health=503), None, "database", "database connection failing for 5 min"),
    (release(), release(), smoke_refused, "smoke", "critical smoke check failing for 5 min"),
], ids=["database", "smoke"])
def test_database_and_critical_smoke_failures_fire_after_the_error_window(make_env, old: Script, new: Script, smoke,
                                                                          trigger: str, condition: str) -> None:
    settings = {"error_rate": 0.6, "source": {"requests_per_sample": 2}}  # a failing health check is 1 error in 2
    result, _ = deploy_and_bake(make_env, settings, old, new, clock=FakeClock(), smoke=smoke)

    assert result.fired.name == trigger
    assert result.fired.condition == condition
    assert len(result.fired.samples) == 21


@pytest.mark.parametrize(("watch_section", "problem"), [
    ({"interval_seconds": 10, "error_window_seconds": 5},
     "error_window_seconds (5) is shorter than interval_seconds (10): it must span at least one interval"),
    ({"bake_seconds": 300}, "bake_seconds (300) must be at least the longest window plus one interval (615)"),
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

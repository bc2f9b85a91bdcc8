"""Performance verification (runbook Steps 11 and 20) against the demo app deployed by `invoke deploy` under
a real supervisord and gunicorn: the feature run as a deploy runs its phase (`verify.phase`: a pytest child
with `--context` carrying the pre-deploy baseline), the load's bounds, and the pure judging functions.

The baseline is measured as the deploy measures it (`bake.baseline` with the environment's prober).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runbook import ROOT, config
from runbook.watch import bake, metrics
from runbook.checks import performance, traffic, usage
from runbook.engine import run, state, verify as verifying
from runbook.engine.context import RunContext
from runbook.findings import Finding

from . import apps, cli, packages

LIMITS = {"requests": 60, "seconds": 10, "concurrency": 2, "latency_factor": 10, "max_error_rate": 0.01,
          "max_memory_mb": 2000, "max_cpu_percent": 1000}
"""Limits a healthy demo app meets with room to spare: one gunicorn worker answering two connections at
once may take a few times as long as one request alone (the baseline's prober sends one at a time)."""

TITLE = "Performance verification (Steps 11 and 20)"
LATENCY = "Step 11 - Response time under load stays within the allowed multiple of the baseline"
ERRORS = "Step 11 - Error rate under load stays under the limit"
MEMORY = "Step 20 - Memory of the app on each host stays under its limit"
CPU = "Step 20 - CPU of the app on each host stays under its limit"


def slow_status(text: str) -> str:
    """app.py whose status API takes 250 ms longer to answer (its health check is as fast as before)."""
    marker = "def status(request: Request) -> Response:\n"
    assert marker in text
    return text.replace(marker, marker + "    time.sleep(0.25)\n")


def with_performance(env_file: Path, settings: dict, name: str) -> Path:
    """A copy of the environment file with a `performance` section: the same app, supervisord and database."""
    data = yaml.safe_load(env_file.read_text())
    data["performance"] = settings
    path = env_file.with_name(name)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure_baseline(env_file: Path) -> dict:
    """The release serving now, measured as the deploy's baseline phase does, in the form of the deploy's context."""
    env = config.load_environment(str(env_file))
    before = bake.baseline(env, metrics.source(env))
    assert before.p95_seconds is not None, before
    return {"p95_seconds": before.p95_seconds, "error_rate": before.error_rate}


class Phase:
    """The performance feature's results as a deploy records them."""

    def __init__(self, result: run.PhaseResult) -> None:
        self.result = result
        self.scenarios = {s["scenario"]: s for s in result.scenarios}

    def outcomes(self) -> dict[str, str]:
        return {name: s["outcome"] for name, s in self.scenarios.items()}

    def evidence(self, name: str) -> str:
        items = [e for step in self.scenarios[name]["steps"] for e in step["evidence"]]
        return "\n".join(e.get("text") or json.dumps(e["findings"]) for e in items)


@pytest.fixture
def verify(monkeypatch, tmp_path, capsys):
    """Run the performance feature against an environment file as the deploy's phase does, with `context`."""
    monkeypatch.setenv("RUNBOOK_REPORTS", str(tmp_path / "verify-reports"))
    monkeypatch.setenv("RUNBOOK_TEST_SECRET", apps.SECRET)

    def phase(env_file: Path, context: RunContext, version: str = "1.0.0") -> Phase:
        started = run.start(str(env_file), version, "deploy")
        result = verifying.phase(started, "performance", TITLE, "deploy", "performance", version, context)
        shown = capsys.readouterr().out + "".join(p.read_text() for p in started.folder.iterdir() if p.is_file())
        assert apps.SECRET not in shown
        assert result.scenarios, f"the feature did not run: {result.error}\n{shown}"
        return Phase(result)

    return phase


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The demo app 1.0.0, deployed by `invoke deploy` with a `performance` section (its first deploy), and
    the record of that deploy."""
    folder = tmp_path_factory.mktemp("performance")
    with apps.deployable(folder, {"performance": LIMITS}) as app:
        packages.build(folder, "1.0.0")
        deploy = cli.invoke(folder / "reports", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert deploy.code == 0, deploy.output
        yield app, deploy


def context(env_file: Path, baseline: dict | None, target: str | None) -> RunContext:
    """What a deploy passes to its verifying phases: the release in place, the one before it, the baseline."""
    live = state.load(config.load_environment(str(env_file))).live
    return RunContext(release=live.release, version=live.version, target=target, baseline=baseline)


def test_first_deploy_runs_the_performance_phase_and_says_it_had_no_baseline(deployed):
    app, deploy = deployed
    phases = [p["name"] for p in deploy.record["phases"]]
    assert "performance" in phases and phases.index("verification") < phases.index("performance"), phases
    assert deploy.scenario(LATENCY)["outcome"] == "passed"
    latency = json.dumps(deploy.scenario(LATENCY)["steps"])
    assert "no baseline: first deploy" in latency and "not compared" in latency
    assert {deploy.scenario(name)["outcome"] for name in (ERRORS, MEMORY, CPU)} == {"passed"}


def test_healthy_release_passes_with_the_load_memory_and_cpu_of_each_host_in_evidence(deployed, verify):
    app, _ = deployed
    env_file = with_performance(app.env_file, LIMITS, "healthy.yaml")
    baseline = measure_baseline(env_file)
    phase = verify(env_file, context(env_file, baseline, target="the-release-before"))

    assert phase.result.outcome == "passed", phase.scenarios
    assert phase.outcomes() == {LATENCY: "passed", ERRORS: "passed", MEMORY: "passed", CPU: "passed"}
    evidence = phase.evidence(LATENCY)
    assert f"60 requests sent to {app.base} (/health, /api/status in turn) from 2 connections" in evidence
    assert "stopped by its limit of 60 requests" in evidence and "answers: 60 x 200" in evidence
    assert "failed: 0, error rate 0.0%" in evidence and "p95 latency: " in evidence
    assert f"limit 10 x baseline {baseline['p95_seconds'] * 1000:.1f} ms" in evidence
    assert "0 of 60 requests failed, error rate 0.0% (limit 1%)" in phase.evidence(ERRORS)
    for name, shown in ((MEMORY, "MB resident memory"), (CPU, "% CPU over")):
        assert "host localhost: service web:" in phase.evidence(name) and shown in phase.evidence(name)
        found = [e for step in phase.scenarios[name]["steps"] for e in step["evidence"] if "findings" in e]
        assert [f["subject"] for f in found[-1]["findings"]] == ["host localhost"]


def test_slow_release_fails_the_response_time_check_against_the_baseline(app_env, build, invoke, verify):
    # the deploy's own watch probes the health check alone, so it does not roll the slow release back
    data = yaml.safe_load(app_env.env_file.read_text())
    data["watch"]["source"] = {"kind": "prober", "urls": [f"{app_env.base}/health"]}
    app_env.env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    build("1.0.0")
    build("1.1.0", edit=slow_status)
    first = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert first.code == 0, first.output
    env_file = with_performance(app_env.env_file, LIMITS | {"latency_factor": 2}, "slow.yaml")
    baseline = measure_baseline(env_file)
    previous = state.load(config.load_environment(str(env_file))).live.release
    second = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert second.code == 0, second.output

    phase = verify(env_file, context(env_file, baseline, target=previous), version="1.1.0")
    assert phase.result.outcome == "failed"
    assert phase.outcomes() == {LATENCY: "failed", ERRORS: "passed", MEMORY: "passed", CPU: "passed"}
    message = phase.scenarios[LATENCY]["message"]
    assert message.startswith(f"{app_env.base}: p95 latency under load ")
    assert f"limit 2 x baseline {baseline['p95_seconds'] * 1000:.1f} ms" in message
    assert phase.result.cause.startswith(f"{LATENCY}: {app_env.base}: p95 latency under load")


def test_memory_over_its_limit_fails_naming_the_host_and_the_memory_measured(deployed, verify):
    app, _ = deployed
    env_file = with_performance(app.env_file, LIMITS | {"max_memory_mb": 1}, "tiny-memory.yaml")
    phase = verify(env_file, context(env_file, measure_baseline(env_file), target="the-release-before"))

    assert phase.outcomes() == {LATENCY: "passed", ERRORS: "passed", MEMORY: "failed", CPU: "passed"}
    message = phase.scenarios[MEMORY]["message"]
    assert message.startswith("host localhost: service web: ") and message.endswith("; limit 1 MB"), message
    measured = float(message.split(" MB resident memory")[0].split()[-1])
    assert measured > 1


def test_unset_limits_are_skipped_and_a_first_deploy_is_not_compared(deployed, verify):
    app, _ = deployed
    env_file = with_performance(app.env_file, LIMITS | {"max_memory_mb": None, "max_cpu_percent": None}, "open.yaml")
    phase = verify(env_file, context(env_file, baseline=None, target=None))

    assert phase.result.outcome == "passed"
    assert phase.outcomes() == {LATENCY: "passed", ERRORS: "passed", MEMORY: "skipped", CPU: "skipped"}
    assert "no baseline: first deploy (no release was live before)" in phase.evidence(LATENCY)
    for name, key in ((MEMORY, "max_memory_mb"), (CPU, "max_cpu_percent")):
        assert phase.scenarios[name]["message"].startswith(f"no limit configured: performance.{key} is not set")
        assert "host localhost: service web:" in phase.evidence(name), "measured, even though not judged"


def test_a_direct_pytest_run_has_no_baseline_and_skips_the_response_time_check(deployed, tmp_path):
    app, _ = deployed
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "performance", "--env", str(app.env_file), "--results", str(results),
         "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, env=os.environ | {"RUNBOOK_TEST_SECRET": apps.SECRET}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = {s["scenario"]: s for s in json.loads(results.read_text())}
    assert found[LATENCY]["outcome"] == "skipped" and "no pre-deploy baseline" in found[LATENCY]["message"]
    assert {found[name]["outcome"] for name in (ERRORS, MEMORY, CPU)} == {"passed"}


def test_load_stops_at_its_request_limit_and_takes_the_paths_in_turn(deployed):
    app, _ = deployed
    env = config.load_environment(str(with_performance(app.env_file, LIMITS | {"requests": 20}, "twenty.yaml")))
    result = traffic.load(env)
    assert result.requests == 20 and not result.failures
    assert sorted(a.path for a in result.answers) == ["/api/status"] * 10 + ["/health"] * 10


def test_load_stops_at_its_time_limit_long_before_its_request_limit(deployed):
    app, _ = deployed
    settings = LIMITS | {"requests": 100_000, "seconds": 1}
    result = traffic.load(config.load_environment(str(with_performance(app.env_file, settings, "second.yaml"))))
    assert 0 < result.requests < 100_000
    assert "stopped by its limit of 1 s" in str(result)


def test_a_path_not_starting_with_a_slash_is_refused_before_anything_runs(make_env, invoke, tmp_path):
    path = make_env({"performance": {"paths": ["/health", "https://elsewhere.example.com/"]}})
    result = invoke("preflight", "--env", str(path))
    assert result.code == 2, result.output
    assert "performance.paths[1]" in result.output and "should match pattern '^/'" in result.output
    assert not (tmp_path / "reports").exists()


# --- the pure parts ----------------------------------------------------------------------------------


def answers(*latencies_ms: float, status: int | None = 200) -> tuple[traffic.Answer, ...]:
    return tuple(traffic.Answer("/health", status, ms / 1000) for ms in latencies_ms)


def result(answers_: tuple[traffic.Answer, ...]) -> traffic.LoadResult:
    return traffic.LoadResult("http://app:80", ("/health",), 2, 100, 5, answers_, 1.0)


def test_p95_is_the_nearest_rank_percentile_the_watch_uses():
    assert metrics.percentile(0.95, range(1, 21)) == 19
    assert metrics.percentile(0.95, [7.0]) == 7.0 and metrics.percentile(0.95, []) is None
    assert metrics.percentile(0.5, [4, 1, 3, 2]) == 2


def test_latency_is_judged_against_the_baseline_times_the_factor():
    load = result(answers(*[10] * 19, 40))
    assert load.p95_seconds == 0.010
    assert performance.latency(load, 3, 0.004, first_deploy=False) == Finding(
        "http://app:80", True, "p95 latency under load 10.0 ms over 20 requests; limit 3 x baseline 4.0 ms = 12.0 ms")
    assert not performance.latency(load, 2, 0.004, first_deploy=False).ok
    first = performance.latency(load, 2, None, first_deploy=True)
    assert first.ok and first.detail.startswith("no baseline: first deploy") and "not compared" in first.detail
    silent = performance.latency(result(answers(5, status=None)), 2, 0.004, first_deploy=False)
    assert not silent.ok and "none of the 1 requests was answered" in silent.detail


def test_error_rate_counts_no_answer_and_statuses_outside_2xx():
    load = result(answers(*[5] * 96) + answers(5, 5, status=500) + answers(5, status=302) + answers(5, status=None))
    assert load.error_rate == 0.04
    found = performance.error_rate(load, 0.05, baseline=0.0)
    assert found.ok and found.detail.startswith("4 of 100 requests failed, error rate 4.0% (limit 5%); 0.0% before")
    assert "2 x /health answered 500" in found.detail
    assert not performance.error_rate(load, 0.01).ok
    assert not performance.error_rate(result(()), 0.01).ok


def snap(uptime: float, processes: dict[int, tuple[int, int]]) -> usage.Snapshot:
    return usage.Snapshot(uptime, 100, 4096, processes)


def test_cpu_and_memory_between_two_snapshots():
    before = snap(100.0, {1: (50, 256), 2: (30, 512)})
    # pid 2 gained 150 ticks, pid 3 started meanwhile with 50: 200 ticks in 2 s at 100 ticks/s = 100% (one core)
    after = snap(102.0, {1: (50, 256), 2: (180, 1024), 3: (50, 256)})
    used = usage.between("web1", "web", before, after)
    assert (used.processes, used.cpu_percent, used.seconds) == (3, 100.0, 2.0)
    assert (used.memory_before_mb, used.memory_after_mb, used.memory_mb) == (3.0, 6.0, 6.0)
    assert [f.ok for f in performance.cpu([used], 90)] == [False]
    assert performance.memory([used], 5)[0] == Finding(
        "host web1", False, "service web: 3 processes hold 6.0 MB resident memory (3.0 MB before the load, "
                            "6.0 MB after); limit 5 MB")


def test_a_host_whose_service_does_not_run_fails_both_resource_checks():
    missing = usage.between("web2", "web", snap(1.0, {}), "not running")
    assert str(missing) == "host web2: service web: not measured: not running"
    assert performance.memory([missing], 400) == [Finding("host web2", False, "service web: not measured: not running")]
    assert not performance.cpu([missing], 100)[0].ok


def test_snapshot_output_is_parsed():
    parsed = usage.parse_snapshot("100\n4096\n5012.34\n812 40 2 9000\n813 7 1 3000\n")
    assert parsed == snap(5012.34, {812: (42, 9000), 813: (8, 3000)})
    assert round(parsed.memory_mb, 3) == 46.875


CORE_AGAIN = "Step 16 - Core features work again"
PERFORMANCE_AGAIN = "Step 16 - Performance is within the baseline again"


def test_a_rollback_walks_the_core_journeys_and_loads_the_restored_release_against_the_deploys_baseline(tmp_path):
    with apps.deployable(tmp_path, {"performance": LIMITS}) as app:
        packages.build(tmp_path, "1.0.0")
        packages.build(tmp_path, "1.1.0")
        packages.build(tmp_path, "1.2.0", edit=packages.broken_health)
        for version in ("1.0.0", "1.1.0"):
            assert cli.invoke(tmp_path / "reports", "deploy", "--env", str(app.env_file), "--version", version).code == 0

        broken = cli.invoke(tmp_path / "reports", "deploy", "--env", str(app.env_file), "--version", "1.2.0")
        assert broken.code == 1 and broken.record["rollback"]["to"].endswith("-1.1.0"), broken.output
        assert broken.scenario(CORE_AGAIN)["outcome"] == "passed"
        assert broken.scenario(PERFORMANCE_AGAIN)["outcome"] == "passed"
        load = json.dumps(broken.scenario(PERFORMANCE_AGAIN)["steps"])
        assert "x baseline" in load and "no baseline" not in load, load

        manual = cli.invoke(tmp_path / "reports", "rollback", "--env", str(app.env_file))
        assert manual.code == 0 and app.status()["version"] == "1.0.0", manual.output
        assert manual.scenario(CORE_AGAIN)["outcome"] == "passed"
        measured = manual.scenario(PERFORMANCE_AGAIN)
        assert measured["outcome"] == "skipped" and "`invoke rollback` measures none" in measured["message"], measured

"""Monitoring (Steps 4, 13 and 14): a real Prometheus of the local stack scraping a real demo instance,
its alert rules rendered from the environment file, and the checks that read its APIs."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml

from runbook import ROOT, config, local
from runbook.checks import dependencies, monitoring
from runbook.engine import state
from runbook.errors import ConfigError
from runbook.local import prometheus
from runbook.watch import alerts
from runbook.watch.prometheus import PrometheusQuery

from . import apps
from .prerequisites import require


def _prometheus_missing() -> str | None:
    missing = [name for name in ("prometheus", "promtool") if not (shutil.which(name) or os.path.exists(f"/usr/bin/{name}"))]
    return f"{', '.join(missing)} not installed (apt-get install prometheus)" if missing else None


class DemoInstance:
    """The demo app under gunicorn on a free port (one worker), from a copy of demo/."""

    def __init__(self, folder, database_url: str) -> None:
        source = folder / "demo-src"
        shutil.copytree(ROOT / "demo", source, dirs_exist_ok=True)
        port = apps.free_port()
        self.target = f"127.0.0.1:{port}"
        env = os.environ | {"DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": ""}
        self.server = subprocess.Popen(
            [str(local.supervisor.venv_bin() / "gunicorn"), "--chdir", str(source), "--bind", self.target,
             "--workers", "1", "--no-control-socket", "app:application"],
            cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            assert self.server.poll() is None, "the demo instance exited"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://{self.target}/metrics", timeout=2).status_code == 200:
                    return
            assert time.monotonic() < deadline, "the demo instance did not answer within 30 s"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=30)


def monitored(folder, database_url: str, target: str, changes: dict | None = None):
    """A local-style environment file whose Prometheus (on a free port) scrapes `target` as job demo."""
    state_dir = ROOT / ".local" / f"t-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{apps.free_port()}"
    data = apps.merge(apps.environment(folder, database_url, state_dir), {
        "endpoints": {"settle_seconds": 15},
        "dependencies": [{"name": "monitoring", "role": "monitoring", "kind": "prometheus", "url": url,
                          "timeout": 5}],
        "monitoring": {"url": url, "app_job": "demo", "jobs": {"demo": [target]},
                       "metrics": {"requests": "demo_http_requests_total",
                                   "latency": "demo_http_request_duration_seconds",
                                   "database_failures": "demo_database_connection_failures_total",
                                   "memory": "demo_service_resident_memory_bytes",
                                   "cpu": "demo_service_cpu_seconds_total"}},
        "services": [{"name": "web", "manager": "supervisord",  # never started: the instance runs by itself
                      "command": "{{ bin }}/gunicorn --chdir {{ current }} app:application"}],
        "performance": {"max_memory_mb": 400, "max_cpu_percent": 150},
        "local": {"prometheus": {"scrape_seconds": 0.5}},
    } | (changes or {}))
    path = folder / f"monitored-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def stack(tmp_path, database_url):
    """A demo instance and the local stack's Prometheus scraping it; stopped afterwards."""
    require(_prometheus_missing())
    instance = DemoInstance(tmp_path, database_url)
    env = config.load_environment(str(monitored(tmp_path, database_url, instance.target)))
    try:
        local.up(env, programs=False)
        yield env, instance
    finally:
        instance.stop()
        local.down(env)
        shutil.rmtree(env.local.state_dir, ignore_errors=True)


def _with_live_release(env: config.Environment) -> None:
    live = state.Live(release="r1", version="1.0.0", schema=None, run_id="test", at="2026-01-01T00:00:00.000Z")
    state.save(env, state.State(history=[live]))


def _probe(env: config.Environment):
    (dep,) = [d for d in env.dependencies if d.kind == "prometheus"]
    (finding,) = dependencies.probe(env, dep)
    return finding


def test_monitoring_probe_passes_while_every_target_is_up_and_names_the_target_of_a_stopped_instance(stack):
    env, instance = stack
    _with_live_release(env)
    finding = _probe(env)
    assert finding.ok, finding
    assert "its 1 targets up" in finding.detail
    instance.stop()
    deadline = time.monotonic() + 20
    while finding.ok and time.monotonic() < deadline:  # until the server has scraped it since it stopped
        time.sleep(0.5)
        finding = _probe(env)
    assert not finding.ok
    assert f"demo target {instance.target}: down" in finding.detail, finding.detail


def test_monitoring_probe_lists_the_app_targets_without_judging_them_while_no_release_is_live(stack):
    env, instance = stack
    instance.stop()
    finding = _probe(env)
    assert finding.ok, finding
    assert "job demo not judged: no release is live yet" in finding.detail


def test_step_13_finds_every_target_of_the_release_scraped_and_up(stack):
    env, instance = stack
    findings = monitoring.scraped(env, deadline=10)
    assert [(f.subject, f.ok) for f in findings] == [(f"demo target {instance.target}", True)], findings


def test_the_alert_rules_rendered_from_the_environment_file_are_loaded_and_healthy(stack):
    env, _ = stack
    findings = monitoring.rules_loaded(env, deadline=10)
    assert [f.subject for f in findings] == [f"alert {name}" for name in
                                             ("ErrorRateHigh", "LatencyHigh", "DatabaseConnectionFailures",
                                              "MemoryHigh", "CpuHigh")]
    assert all(f.ok for f in findings), findings
    groups = requests.get(f"{env.monitoring.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = {r["name"]: r["query"] for g in groups for r in g["rules"]}
    assert loaded == {rule.alert: rule.expr for rule in alerts.alert_rules(env)}


def test_local_up_reloads_prometheus_when_the_environment_file_changes_a_threshold(stack):
    env, _ = stack
    data = yaml.safe_load(env.source.read_text())
    data["watch"] = {"error_rate": 0.2}
    env.source.write_text(yaml.safe_dump(data, sort_keys=False))
    changed = config.load_environment(str(env.source))
    assert local.up(changed, programs=False) == [
        "wrote Prometheus's alert rules (5)", f"reloaded Prometheus at {env.monitoring.url}"]
    findings = monitoring.rules_loaded(changed, deadline=10)
    assert all(f.ok for f in findings), findings
    assert "> 0.2" in findings[0].detail


def test_a_rules_file_promtool_rejects_is_a_clear_error_and_the_old_rules_stay_loaded(stack):
    env, _ = stack
    rules = prometheus.folder(local.paths(env)) / "rules" / "runbook.yml"
    before = rules.read_text()
    broken = yaml.safe_dump({"groups": [{"name": "runbook", "rules": [{"alert": "Broken", "expr": "sum(rate("}]}]})
    with pytest.raises(ConfigError, match="promtool check rules") as raised:
        prometheus.install(rules, broken, "rules")
    assert "Broken" in str(raised.value) or "parse error" in str(raised.value)
    assert rules.read_text() == before
    assert prometheus.reload(env) == [f"reloaded Prometheus at {env.monitoring.url}"]
    assert all(f.ok for f in monitoring.rules_loaded(env, deadline=10))


def test_step_13_alerts_scenario_fails_naming_an_alert_that_is_not_loaded(stack, tmp_path):
    env, _ = stack
    fewer = env.model_copy(update={"monitoring": env.monitoring.model_copy(update={"alerts": ["error_rate"]})})
    prometheus.install(prometheus.folder(local.paths(env)) / "rules" / "runbook.yml", alerts.rules_file(fewer), "rules")
    prometheus.reload(env)
    reports = tmp_path / "step13"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "features"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
         "-m", "monitoring", "--env", str(env.source), f"--results={reports}.json", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=os.environ | {"RUNBOOK_TEST_SECRET": apps.SECRET}, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    outcomes = {s["scenario"]: s for s in json.loads((tmp_path / "step13.json").read_text())}
    assert outcomes["Step 13 - Monitoring is enabled"]["outcome"] == "passed"
    alerts_ = outcomes["Step 13 - Alerts are configured"]
    assert alerts_["outcome"] == "failed"
    assert "alert LatencyHigh: is not loaded" in alerts_["message"]
    assert "ErrorRateHigh" not in alerts_["message"]


def test_the_watch_reads_error_rate_and_p95_from_prometheus_while_sending_its_own_traffic(stack):
    env, instance = stack
    host = f"http://{instance.target}"
    source = {"kind": "prometheus_query", "url": env.monitoring.url,
              "error_rate": alerts.error_rate(env.monitoring, 2), "p95_seconds": alerts.p95(env.monitoring, 2),
              "traffic": {"urls": [f"{host}/api/status"], "requests_per_sample": 5}}
    watched = env.model_copy(update={"watch": config.Watch(
        source=source, interval_seconds=0.5, baseline_seconds=1, bake_seconds=3, error_window_seconds=2,
        latency_window_seconds=2, timeout=0.4)})
    query = PrometheusQuery(watched)
    query.begin()
    try:
        deadline, sample = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            sample = query.sample()
            if sample.missing is None:
                break
    finally:
        query.end()
    assert sample is not None and sample.missing is None, sample
    assert sample.error_rate == 0
    assert sample.p95_seconds > 0


def test_the_alert_rules_carry_the_environment_thresholds_over_the_watch_windows():
    rules = {rule.alert: rule.expr for rule in alerts.alert_rules(config.load_environment("prod"))}
    assert rules["ErrorRateHigh"].endswith("[5m])) > 0.05")
    assert "[10m]" in rules["LatencyHigh"] and " > 2 * " in rules["LatencyHigh"]
    assert "[5m] offset 10m" in rules["LatencyHigh"]
    assert rules["MemoryHigh"].endswith(f"> {alerts.number(1500 * 2**20)}")
    assert rules["CpuHigh"].endswith("* 100 > 300")


def test_local_watch_queries_are_the_alerts_expressions_over_its_windows():
    env = config.load_environment("local")
    assert env.watch.source.error_rate == alerts.error_rate(env.monitoring, env.watch.error_window_seconds)
    assert env.watch.source.p95_seconds == alerts.p95(env.monitoring, env.watch.latency_window_seconds,
                                                      matchers=',handler=~"health|status"')


@pytest.mark.parametrize("value, written", [(0.05, "0.05"), (190, "190"), (419430400, "4.194304e+08"),
                                            (1e6, "1e+06"), (123456, "123456"), (0.00001, "1e-05")])
def test_numbers_are_written_as_prometheus_writes_them_back(value, written):
    assert alerts.number(value) == written


@pytest.mark.parametrize("seconds, written", [(300, "5m"), (90, "1m30s"), (0.8, "800ms"), (5, "5s"), (86400, "1d")])
def test_durations_are_written_as_prometheus_writes_them_back(seconds, written):
    assert alerts.duration(seconds) == written


def test_a_prometheus_query_whose_range_is_not_its_window_is_a_config_error(make_env, invoke):
    source = {"kind": "prometheus_query", "url": "http://127.0.0.1:9", "error_rate": "sum(rate(x[1m]))",
              "p95_seconds": "histogram_quantile(0.95, sum by (le) (rate(y_bucket[10m])))"}
    path = make_env({"watch": {"source": source}}, name="wrong-range.yaml")
    result = invoke("preflight", "--env", str(path))
    assert result.code == 2, result.output
    assert "source.error_rate: its PromQL ranges (60 s) must be the window it is judged over (300 s)" in result.output


def test_a_memory_alert_without_a_memory_limit_is_a_config_error(make_env, invoke):
    path = make_env({"monitoring": {"url": "http://127.0.0.1:9", "alerts": ["memory"]}}, name="no-limit.yaml")
    result = invoke("preflight", "--env", str(path))
    assert result.code == 2, result.output
    assert "the memory alert needs its limit, performance.max_memory_mb" in result.output

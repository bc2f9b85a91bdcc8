"""The release watch's sources of samples (runbook Step 14), against real servers on 127.0.0.1: the demo
app under gunicorn with two workers, and small HTTP servers written here that answer like a misbehaving
app, an app's `/metrics` page or a Prometheus server's query API.

The scripted servers are shared with `test_watch.py`.
"""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runbook import config
from runbook.watch import metrics
from runbook.config import Environment

from .test_demo_app import HTTP_TIMEOUT, clean_env, copy_app, free_port, running_gunicorn

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = '{"status": "ok"}'
    content_type: str = "application/json"
    delay: float = 0.0


Script = Callable[[str, int], Reply | None]
"""The reply to a request for a path, the n-th (from 0) since the script was deployed; None hangs up."""


class Scripted:
    """An HTTP server on 127.0.0.1 that answers from a script; `deploy` puts a new one in place."""

    def __init__(self, script: Script, url: str) -> None:
        self.script, self.url, self.paths = script, url, []
        self._lock = threading.Lock()

    def deploy(self, script: Script) -> None:
        with self._lock:
            self.script, self.paths = script, []

    def reply(self, path: str) -> Reply | None:
        with self._lock:
            self.paths.append(path)
            return self.script(path, len(self.paths) - 1)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        reply = self.server.scripted.reply(self.path)
        if reply is None:
            self.close_connection = True
            return
        time.sleep(reply.delay)
        body = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


@contextlib.contextmanager
def serve(script: Script) -> Iterator[Scripted]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.scripted = Scripted(script, f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.scripted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def exposition(requests_by_status: dict[str, int], buckets: dict[str, int]) -> str:
    """A `/metrics` page: `app_requests_total` by status and the cumulative `app_latency_seconds` buckets."""
    lines = ["# TYPE app_requests counter"]
    lines += [f'app_requests_total{{status="{status}"}} {count}' for status, count in requests_by_status.items()]
    lines += ["# TYPE app_latency_seconds histogram"]
    lines += [f'app_latency_seconds_bucket{{le="{le}"}} {count}' for le, count in buckets.items()]
    lines += [f"app_latency_seconds_count {buckets['+Inf']}", "app_latency_seconds_sum 0"]
    return "\n".join(lines) + "\n"


def pages(*texts: str | None) -> Script:
    """Scrape n gets texts[n], the last one from then on; None hangs up without answering."""

    def script(path: str, n: int) -> Reply | None:
        text = texts[min(n, len(texts) - 1)]
        return None if text is None else Reply(body=text, content_type=PROMETHEUS_TEXT)

    return script


def prometheus(results: dict[str, list]) -> Script:
    """A Prometheus server whose `/api/v1/query` answers each expression with the vector given."""

    def script(path: str, n: int) -> Reply:
        expression = parse_qs(urlsplit(path).query)["query"][0]
        data = {"resultType": "vector", "result": results[expression]}
        return Reply(body=json.dumps({"status": "success", "data": data}))

    return script


TEXT_SOURCE = {"kind": "prometheus_text", "requests": "app_requests_total", "latency": "app_latency_seconds"}


def load(make_env, watch: dict, base: str = "http://127.0.0.1:1") -> Environment:
    """The test environment with this `watch` section, its endpoints on `base`."""
    endpoints = {"health": f"{base}/health", "status": f"{base}/api/status"}
    return config.load_environment(str(make_env({"watch": watch, "endpoints": endpoints})))


def test_p95_is_interpolated_in_its_bucket_from_scrape_deltas_across_a_new_series_and_a_reset(make_env) -> None:
    first = exposition({"200": 10}, {"0.1": 10, "0.5": 10, "1": 10, "+Inf": 10})
    # since `first`: 90 answered 200 and 10 answered 500 (a new series); 10 took <= 0.1 s, 80 <= 0.5 s, 10 <= 1 s
    second = exposition({"200": 100, "500": 10}, {"0.1": 20, "0.5": 100, "1": 110, "+Inf": 110})
    # the app restarted: every counter went down, so all of its value is new (3 answered 200, 1 answered 500)
    restarted = exposition({"200": 3, "500": 1}, {"0.1": 4, "0.5": 4, "1": 4, "+Inf": 4})
    with serve(pages(first, second, restarted)) as app:
        source = metrics.source(load(make_env, {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}}))
        source.begin()
        after_deploy, after_restart = source.sample(), source.sample()

    assert after_deploy.missing is None
    assert after_deploy.error_rate == pytest.approx(0.10)
    # the 95th of 100 requests is the 5th of the 10 in (0.5 s, 1 s]: 0.5 + 0.5 * 5/10
    assert after_deploy.p95_seconds == pytest.approx(0.75)
    assert after_restart.error_rate == pytest.approx(0.25)
    assert after_restart.p95_seconds == pytest.approx(0.1 * 3.8 / 4)
    assert app.paths == ["/metrics"] * 3


@pytest.mark.parametrize(("page", "reason"), [
    ("this is { not a metrics page", "is not a valid metrics page: could not convert string to float: '{'"),
    ("other_requests_total 3\n", "no series app_requests_total on "),
    ('app_requests_total{status="200"} 2\napp_latency_seconds_bucket{le="soon"} 2\n',
     "is not a valid metrics page: a bucket's upper bound le='soon' is not a number"),
], ids=["malformed", "no-series", "bad-bucket-bound"])
def test_a_page_without_the_series_is_missing_data_with_the_reason(make_env, page: str, reason: str) -> None:
    good = exposition({"200": 1}, {"0.1": 1, "+Inf": 1})
    with serve(pages(good, page)) as app:
        source = metrics.source(load(make_env, {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}}))
        source.begin()
        sample = source.sample()

    assert (sample.error_rate, sample.p95_seconds) == (None, None)
    assert reason in sample.missing


def test_prometheus_query_takes_the_worst_series_and_reports_no_series_as_missing(make_env) -> None:
    error_rate = ('sum by (instance) (rate(http_requests_total{status=~"5.."}[5m]))'
                  " / sum by (instance) (rate(http_requests_total[5m]))")
    p95 = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[10m])))"
    series = [{"metric": {"instance": "web1"}, "value": [1764322200, "0.02"]},
              {"metric": {"instance": "web2"}, "value": [1764322200, "0.07"]}]
    with serve(prometheus({error_rate: series, p95: []})) as server:
        source = {"kind": "prometheus_query", "url": server.url, "error_rate": error_rate, "p95_seconds": p95}
        sample = metrics.source(load(make_env, {"source": source})).sample()

    assert sample.error_rate == pytest.approx(0.07)
    assert sample.p95_seconds is None
    assert sample.missing == "p95 query: no series"
    assert [parse_qs(urlsplit(path).query)["query"] for path in server.paths] == [[error_rate], [p95]]
    assert all(urlsplit(path).path == "/api/v1/query" for path in server.paths)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[str]:
    """The demo app under gunicorn with two workers sharing a PROMETHEUS_MULTIPROC_DIR; no APP_SECRET_KEY, so
    a login answers 503."""
    folder = tmp_path_factory.mktemp("watched")
    (folder / "prometheus").mkdir()
    env = clean_env(DATABASE_URL=database_url, GUNICORN_CMD_ARGS="--workers 2",
                    PROMETHEUS_MULTIPROC_DIR=str(folder / "prometheus"))
    with running_gunicorn(copy_app(folder / "demo"), env) as base_url:
        yield base_url


def latency_buckets(base_url: str) -> dict[float, float]:
    """The demo's cumulative latency buckets, all handlers together, as the test reads them itself
    ({upper bound: count})."""
    page = requests.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == "demo_http_request_duration_seconds_bucket":
                buckets[float(s.labels["le"])] = buckets.get(float(s.labels["le"]), 0) + s.value
    return buckets


def test_error_rate_and_p95_from_the_demo_apps_metrics_deltas_across_workers(make_env, demo: str) -> None:
    source = {"kind": "prometheus_text", "requests": "demo_http_requests_total",
              "latency": "demo_http_request_duration_seconds"}
    env = load(make_env, {"source": source}, demo)
    watched = metrics.source(env)
    before = latency_buckets(demo)
    watched.begin()
    for method, path, status, times in [("GET", "/health", 200, 6), ("POST", "/api/login", 503, 3),
                                        ("GET", "/no/such/path", 404, 1)]:
        for _ in range(times):
            assert requests.request(method, f"{demo}{path}", json={}, timeout=HTTP_TIMEOUT).status_code == status
    sample = watched.sample()
    increase = {le: count - before.get(le, 0) for le, count in latency_buckets(demo).items()}

    assert sample.missing is None
    assert sample.error_rate == pytest.approx(3 / 10)
    assert increase[float("inf")] == 10
    # the 95th percentile lies in the first bucket holding 9.5 of the 10 requests
    bounds = sorted(increase)
    upper = next(le for le in bounds if increase[le] >= 9.5)
    lower = max([le for le in bounds if le < upper], default=0.0)
    assert lower <= sample.p95_seconds <= upper


def test_the_metrics_page_is_found_beside_the_status_endpoint_and_scrapes_are_not_counted(make_env, demo: str) -> None:
    env = load(make_env, {"source": {"kind": "prometheus_text", "requests": "demo_http_requests_total",
                                     "latency": "demo_http_request_duration_seconds"}}, demo)
    watched = metrics.source(env)
    watched.begin()
    sample = watched.sample()

    assert sample.missing == "no requests since the last scrape"


PROBED = {"interval_seconds": 0.5, "timeout": 0.4, "baseline_seconds": 1, "bake_seconds": 2,
          "error_window_seconds": 1, "latency_window_seconds": 1, "min_requests": 2}


def probed(env: Environment) -> metrics.Sample:
    """The prober's first interval of requests, every one finished: a sample taken an interval and a timeout
    after `begin()` (the next interval's requests are sent only from that sample on)."""
    source = metrics.source(env)
    source.begin()
    time.sleep(env.watch.interval_seconds + env.watch.timeout)
    try:
        return source.sample()
    finally:
        source.end()


def test_prober_measures_status_latency_and_the_database_of_the_demo_app(make_env, demo: str) -> None:
    sample = probed(load(make_env, PROBED | {"source": {"requests_per_sample": 4}}, demo))

    assert (sample.error_rate, sample.database_ok, sample.missing, sample.requests) == (0.0, True, None, 4)
    assert sample.p95_seconds > 0


def test_prober_sees_a_demo_app_without_its_database_as_errors_and_a_database_failure(make_env, tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/demo")
    with running_gunicorn(copy_app(tmp_path / "demo"), env) as base_url:
        sample = probed(load(make_env, PROBED | {"source": {"requests_per_sample": 4}}, base_url))

    assert (sample.error_rate, sample.database_ok, sample.missing) == (1.0, False, None)


def test_prober_counts_requests_nobody_answers_as_errors(make_env) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    sample = probed(load(make_env, PROBED | {"source": {"requests_per_sample": 2}}, nobody))

    assert (sample.error_rate, sample.p95_seconds, sample.database_ok, sample.requests) == (1.0, None, None, 2)


def test_a_slow_answer_is_a_latency_a_timeout_an_error_and_no_tick_is_skipped(make_env) -> None:
    from runbook.watch import bake

    slow = {"/health": 0.3, "/api/status": 1.0}  # within the 0.4 s timeout, and past it
    with serve(lambda path, n: Reply(delay=slow[path])) as app:
        env = load(make_env, PROBED | {"baseline_seconds": 2, "source": {"requests_per_sample": 4}}, app.url)
        measured = bake.baseline(env, metrics.source(env))

    assert len(measured.samples) == 4  # every tick of 2 s at 0.5 s, each answering at once
    requests = sum(s.requests for s in measured.samples)
    assert requests >= 8  # the requests sent in the first three intervals have all finished
    errors = sum(s.tally.errors for s in measured.samples)
    assert 0 < errors < requests  # the status requests timed out: errors; the health answers did not
    assert 0.3 <= measured.p95_seconds < 0.4  # the health answers' latencies, not the timeouts'

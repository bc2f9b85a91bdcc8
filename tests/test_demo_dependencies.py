"""The demo's real dependencies: its worker on RabbitMQ, its Redis cache, the local stack's external API
and authentication service (demo/services, under gunicorn), and the Step 11 checks of them.

Everything runs for real on free ports: RabbitMQ (127.0.0.1:5672) with a queue of this test's own,
Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432) with a fresh database.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import psycopg
import pytest
import redis
import requests
import yaml

from runbook import ROOT, config, local
from runbook.checks import connectivity, journeys, smoke
from runbook.local.services import SERVICES

from . import apps, packages
from .prerequisites import require
from .test_demo_app import (ADMIN_PASSWORD, GUNICORN, HTTP_TIMEOUT, clean_env, copy_app, json_body, run_migrate,
                            running_gunicorn, stop)

AUTH_SECRET = "shared-" + uuid.uuid4().hex
AMQP_URL = "amqp://127.0.0.1:5672/%2F"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _broker_missing() -> str | None:
    try:
        pika.BlockingConnection(pika.URLParameters(AMQP_URL + "?connection_attempts=1&socket_timeout=3")).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # any client's failure means the machine's service is not there
        return f"RabbitMQ on 127.0.0.1:5672 and Redis on 127.0.0.1:6379 are needed: {e}"
    return None


@pytest.fixture(autouse=True)
def brokers() -> None:
    require(_broker_missing())


@contextmanager
def service(module: str, env: dict[str, str] | None = None, port: int | None = None) -> Iterator[str]:
    """One of demo/services under gunicorn on `port` (default: a free one); its base URL."""
    port = port or apps.free_port()
    command = [str(GUNICORN), "--chdir", str(SERVICES), "--bind", f"127.0.0.1:{port}", "--no-control-socket",
               f"{module}:application"]
    process = subprocess.Popen(command, env=clean_env(**(env or {})), stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"{module} exited with {process.returncode}"
            try:
                requests.get(f"{base}/health", timeout=HTTP_TIMEOUT)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, f"{module} did not answer within 20 s"
                time.sleep(0.1)
        yield base
    finally:
        stop(process)


@contextmanager
def auth_service(config_file: Path, port: int | None = None) -> Iterator[str]:
    """The auth service accepting admin with ADMIN_PASSWORD from callers presenting AUTH_SECRET."""
    config_file.write_text(f'AUTH_USERNAME="admin"\nAUTH_PASSWORD="{ADMIN_PASSWORD}"\nAUTH_SECRET="{AUTH_SECRET}"\n')
    config_file.chmod(0o600)
    with service("auth", {"AUTH_CONFIG": str(config_file)}, port) as base:
        yield base


@pytest.fixture(scope="module")
def external_api() -> Iterator[str]:
    with service("extapi") as base:
        yield base


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A migrated copy of demo/ and the environment of its processes (a queue of its own)."""
    with apps.fresh_database() as database:
        folder = copy_app(tmp_path_factory.mktemp("deps") / "demo")
        env = clean_env(DATABASE_URL=database, APP_SECRET_KEY="test-secret-key", APP_ADMIN_PASSWORD=ADMIN_PASSWORD,
                        APP_AMQP_URL=AMQP_URL, APP_AMQP_QUEUE=f"runbook-test-{uuid.uuid4().hex[:8]}",
                        APP_REDIS_URL=REDIS_URL)
        assert run_migrate(folder, "up", env=env).returncode == 0
        yield folder, env
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        connection.channel().queue_delete(env["APP_AMQP_QUEUE"])
        connection.close()


@pytest.fixture(scope="module")
def app(demo, external_api: str) -> Iterator[str]:
    folder, env = demo
    with running_gunicorn(folder, env | {"APP_API_URL": external_api}) as base:
        yield base


@contextmanager
def worker(demo) -> Iterator[subprocess.Popen]:
    folder, env = demo
    process = subprocess.Popen([sys.executable, str(folder / "worker.py")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        stop(process)


def token(base: str) -> dict[str, str]:
    answer = requests.post(f"{base}/api/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                           timeout=HTTP_TIMEOUT)
    return {"Authorization": f"Bearer {json_body(answer, 200)['token']}"}


def check_env(tmp_path: Path, base: str, seconds: float = 3) -> config.Environment:
    """An environment whose smoke account walks the three journeys of the app at `base`."""
    data = apps.environment(tmp_path, "postgresql://postgres@127.0.0.1:5432/postgres", tmp_path / "state")
    data["endpoints"] = {"health": f"{base}/health", "status": f"{base}/api/status", "timeout": 3,
                         "smoke": {"username": "admin", "password": ADMIN_PASSWORD, "job_seconds": seconds,
                                   "cache_ttl_seconds": 1, "journeys": ["message_queue", "cache", "external_api"]}}
    path = tmp_path / "journeys.yaml"
    path.write_text(yaml.safe_dump(data))
    return config.load_environment(str(path))


def test_a_job_submitted_through_the_app_is_done_by_the_worker(app: str, demo) -> None:
    auth = token(app)
    with worker(demo):
        job = json_body(requests.post(f"{app}/api/jobs", json={"text": "three little words"}, headers=auth,
                                      timeout=HTTP_TIMEOUT), 202)
        deadline = time.monotonic() + 20
        while (answer := json_body(requests.get(f"{app}/api/jobs/{job['id']}", headers=auth,
                                                timeout=HTTP_TIMEOUT), 200))["status"] != "done":
            assert time.monotonic() < deadline, f"job {job['id']} not done within 20 s: {answer}"
            time.sleep(0.1)
    assert answer["result"]["words"] == 3 and answer["result"]["characters"] == len("three little words")


def test_the_queue_check_passes_with_the_worker_running(app: str, demo, tmp_path: Path) -> None:
    env = check_env(tmp_path, app)
    with worker(demo):
        found = journeys.job_processed(env, smoke.log_in(env))
    assert found.ok, found


def test_with_the_worker_stopped_the_job_stays_queued_and_the_check_fails_naming_it(
        app: str, demo, tmp_path: Path) -> None:
    env = check_env(tmp_path, app, seconds=1.5)
    found = journeys.job_processed(env, smoke.log_in(env))
    assert not found.ok
    job_id = int(found.subject.split()[1])
    assert found.subject.startswith(f"job {job_id} ") and "still queued after 1.5 s" in found.detail
    with psycopg.connect(demo[1]["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone() == ("queued",)
    with worker(demo):  # the job was kept on the queue: a worker that comes back does it
        deadline = time.monotonic() + 20
        while job_status(demo, job_id) != "done":
            assert time.monotonic() < deadline, f"job {job_id} not done within 20 s of the worker's return"
            time.sleep(0.1)


def job_status(demo, job_id: int) -> str:
    with psycopg.connect(demo[1]["DATABASE_URL"], connect_timeout=5) as conn:
        return conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]


def test_a_cached_value_reads_back_and_is_gone_after_its_ttl(app: str) -> None:
    auth, key = token(app), f"test-{uuid.uuid4().hex[:8]}"
    written = json_body(requests.put(f"{app}/api/cache/{key}", json={"value": "kept", "ttl_seconds": 1},
                                     headers=auth, timeout=HTTP_TIMEOUT), 200)
    assert written == {"key": key, "ttl_seconds": 1}
    assert json_body(requests.get(f"{app}/api/cache/{key}", headers=auth, timeout=HTTP_TIMEOUT), 200)["value"] == "kept"
    deadline = time.monotonic() + 10
    while (answer := requests.get(f"{app}/api/cache/{key}", headers=auth, timeout=HTTP_TIMEOUT)).status_code == 200:
        assert time.monotonic() < deadline, "the cached value outlived its TTL by 9 s"
        time.sleep(0.1)
    assert "expired" in json_body(answer, 404)["error"]


def test_the_cache_and_external_api_checks_pass_against_the_app(app: str, tmp_path: Path) -> None:
    env = check_env(tmp_path, app)
    client = smoke.log_in(env)
    written, key, moment = journeys.cache_written(env, client)
    assert written.ok, written
    expired = journeys.cache_expired(env, client, key, moment)
    assert expired.ok, expired
    rates = journeys.external_api_answers(client)
    assert rates.ok and "rates from" in rates.detail, rates


CACHE_READ = "environ['REQUEST_METHOD'] == 'GET' and environ['PATH_INFO'].startswith('/api/cache/')"


@contextmanager
def cache_read_edited(demo, tmp_path: Path, external_api: str, code: str) -> Iterator[tuple[str, Path]]:
    """A copy of the demo that runs `code` (indented lines, where MARKER names the marker file) before
    answering a read of its cache, while the marker file exists: its base URL and the marker (created)."""
    folder, env = demo
    marker = tmp_path / "marker"
    marker.touch()
    copy = copy_app(tmp_path / "edited")
    app_py = copy / "app.py"
    edit = f"if {CACHE_READ}:\n" + code.replace("MARKER", repr(str(marker)))
    app_py.write_text(packages.once_marked(app_py.read_text(), marker, edit))
    with running_gunicorn(copy, env | {"APP_API_URL": external_api}) as base:
        yield base, marker


def test_a_read_back_answered_past_the_ttl_is_no_verdict_and_a_fresh_value_passes(
        demo, external_api: str, tmp_path: Path) -> None:
    # the first read of the cache takes 1.5 s, past the value's time to live of 1 s: it finds nothing
    with cache_read_edited(demo, tmp_path, external_api, "    os.remove(MARKER)\n    time.sleep(1.5)") as (base, marker):
        env = check_env(tmp_path, base)
        client = smoke.log_in(env)
        written, key, moment = journeys.cache_written(env, client)
        assert not marker.exists(), "the slow read did not happen"
        assert written.ok and "(after 1 read-back answered past it), read back equal" in written.detail, written
        expired = journeys.cache_expired(env, client, key, moment)
    assert expired.ok, expired


def test_a_cached_value_lost_within_its_ttl_fails_the_check(demo, external_api: str, tmp_path: Path) -> None:
    lost = "    start_response('404 Not Found', [('Content-Type', 'application/json')])\n    return [b'{}']"
    with cache_read_edited(demo, tmp_path, external_api, lost) as (base, _):
        env = check_env(tmp_path, base)
        written, _, _ = journeys.cache_written(env, smoke.log_in(env))
    assert not written.ok and written.detail == "gone (404) within its time to live of 1 s", written


def test_rates_are_502_when_the_external_api_is_down(demo) -> None:
    folder, env = demo
    with running_gunicorn(folder, env | {"APP_API_URL": f"http://127.0.0.1:{apps.free_port()}"}) as base:
        answer = requests.get(f"{base}/api/rates", timeout=HTTP_TIMEOUT)
    assert "the external API failed" in json_body(answer, 502)["error"] and "Traceback" not in answer.text


def test_login_goes_through_the_auth_service_and_is_503_when_it_is_down(demo, tmp_path: Path) -> None:
    folder, env = demo
    config_file = tmp_path / "auth.env"
    port = apps.free_port()
    app_env = env | {"APP_AUTH_URL": f"http://127.0.0.1:{port}", "APP_AUTH_SECRET": AUTH_SECRET,
                     "APP_ADMIN_PASSWORD": "not-this"}
    with running_gunicorn(folder, app_env) as base:
        def login(password: str) -> requests.Response:
            return requests.post(f"{base}/api/login", json={"username": "admin", "password": password},
                                 timeout=HTTP_TIMEOUT)

        with auth_service(config_file, port):
            assert json_body(login(ADMIN_PASSWORD), 200)["token"]  # the service's password, not the app's own
            assert "error" in json_body(login("not-this"), 401)
        down = login(ADMIN_PASSWORD)
    assert "authentication service unavailable" in json_body(down, 503)["error"]
    assert "Traceback" not in down.text and AUTH_SECRET not in down.text


def test_login_is_503_when_the_app_presents_the_wrong_shared_secret(demo, tmp_path: Path) -> None:
    folder, env = demo
    with auth_service(tmp_path / "auth.env") as auth_url:
        app_env = env | {"APP_AUTH_URL": auth_url, "APP_AUTH_SECRET": "wrong"}
        with running_gunicorn(folder, app_env) as base:
            refused = requests.post(f"{base}/api/login", json={"username": "admin", "password": ADMIN_PASSWORD},
                                    timeout=HTTP_TIMEOUT)
    assert "missing or wrong shared secret" in json_body(refused, 503)["error"]


def test_the_auth_service_refuses_a_caller_without_the_shared_secret(tmp_path: Path) -> None:
    with auth_service(tmp_path / "auth.env") as auth_url:
        answer = requests.post(f"{auth_url}/v1/verify", json={"username": "admin", "password": ADMIN_PASSWORD},
                               timeout=HTTP_TIMEOUT)
    assert json_body(answer, 401) == {"error": "missing or wrong shared secret"}


def test_the_local_stack_runs_both_services_and_the_api_probe_fails_once_the_api_is_stopped(
        make_env, monkeypatch) -> None:
    monkeypatch.setenv("RUNBOOK_TEST_SECRET", apps.SECRET)
    api, auth = apps.free_port(), apps.free_port()
    state = ROOT / ".local" / f"t-{uuid.uuid4().hex[:8]}"
    path = make_env({
        "local": {"state_dir": str(state), "api": {"port": api},
                  "auth": {"port": auth, "username": "admin", "password": "${RUNBOOK_TEST_SECRET}",
                           "secret": "${RUNBOOK_TEST_SECRET}"}},
        "dependencies": [{"name": "api", "role": "api", "kind": "http", "url": f"http://127.0.0.1:{api}/health"},
                         {"name": "auth", "role": "auth", "kind": "http", "url": f"http://127.0.0.1:{auth}/health"}],
    })
    env = config.load_environment(str(path))
    try:
        assert (state / "auth" / "auth.env").stat().st_mode & 0o777 == 0o600
        assert apps.SECRET not in (state / "supervisor" / "supervisord.conf").read_text()
        for role in ("api", "auth"):
            deadline = time.monotonic() + 20
            while not all(f.ok for f in connectivity.dependencies_answer(env, role)):
                assert time.monotonic() < deadline, connectivity.dependencies_answer(env, role)
                time.sleep(0.2)
        local.supervisorctl(local.paths(env), "stop", "external-api")
        (finding,) = connectivity.dependencies_answer(env, "api")
        assert not finding.ok and f"127.0.0.1:{api}/health does not answer" in finding.detail
    finally:
        local.down(env)
        shutil.rmtree(state, ignore_errors=True)


def test_a_job_the_broker_does_not_take_is_503_and_not_kept(demo) -> None:
    folder, env = demo
    with running_gunicorn(folder, env | {"APP_AMQP_URL": f"amqp://127.0.0.1:{apps.free_port()}/%2F"}) as base:
        before = job_count(env)
        answer = requests.post(f"{base}/api/jobs", json={"text": "lost"}, headers=token(base), timeout=HTTP_TIMEOUT)
    assert "message queue unavailable" in json_body(answer, 503)["error"] and "Traceback" not in answer.text
    assert job_count(env) == before


def job_count(env: dict[str, str]) -> int:
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


def test_a_reloaded_worker_keeps_its_process_and_runs_the_code_its_path_points_to_now(
        app: str, demo, tmp_path: Path) -> None:
    folder, env = demo
    releases = tmp_path / "releases"
    releases.mkdir()
    marked = Path(shutil.copytree(folder, releases / "marked"))
    (marked / "worker.py").write_text((folder / "worker.py").read_text().replace(
        'logger.info("waiting for jobs on %s", name)', 'logger.info("marked release waiting on %s", name)'))
    current = tmp_path / "current"
    current.symlink_to(folder)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(current / "worker.py")], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_line(log, "waiting for jobs on", process)
        tmp_link = tmp_path / "current.new"
        tmp_link.symlink_to(marked)
        tmp_link.replace(current)
        process.send_signal(signal.SIGHUP)
        wait_for_line(log, "marked release waiting on", process)
        assert process.poll() is None
        env_file = check_env(tmp_path, app)
        found = journeys.job_processed(env_file, smoke.log_in(env_file))
        assert found.ok, found
    finally:
        stop(process)


def wait_for_line(log: Path, text: str, process: subprocess.Popen, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert process.poll() is None, f"the worker exited with {process.returncode}: {log.read_text()}"
        assert time.monotonic() < deadline, f"{text!r} not logged within {seconds:g} s: {log.read_text()}"
        time.sleep(0.1)

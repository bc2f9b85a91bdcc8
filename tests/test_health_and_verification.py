"""Health checks (Step 10) and post-deployment verification (Steps 11 and 12) as users run them:
`pytest -m health` / `-m verification` in a child process, against the demo app under a real gunicorn.

Each app is a migrated copy of demo/ with its own `.env` and `VERSION`, on a database of this module
created on 127.0.0.1:5432 and dropped at the end; every gunicorn is stopped when its test ends.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql

from runbook import ROOT, config
from runbook.checks import probes, smoke
from runbook.errors import CheckFailed
from runbook.secrets import redact

DEMO = ROOT / "demo"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
MACHINE_PG = "postgresql://postgres@127.0.0.1:5432"
APP_VARIABLES = ("DATABASE_URL", "APP_UPLOAD_DIR", "APP_SECRET_KEY", "APP_ADMIN_PASSWORD")
PROCESS_TIMEOUT = 300
HTTP_TIMEOUT = 5
STARTUP_SECONDS = 30
QUICK = {"attempts": 3, "interval": 0.2}
"""Endpoint settings for checks expected to fail: a few tries, close together."""

VERSION_SCENARIO = "Step 10 - The application runs the version being released"
HEALTH_SCENARIO = "Step 10 - The application answers its health check"
SMOKE_SCENARIOS = [
    "Step 11 - User authentication works",
    "Step 11 - Data processing works",
    "Step 11 - File uploads and downloads work",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_database():
    """A fresh database for this module's apps, dropped at the end."""
    name = f"runbook_http_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{MACHINE_PG}/{name}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class App:
    folder: Path
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self, **settings) -> dict:
        """The `endpoints` section of an environment file for this app, with the smoke test account."""
        return {
            "health": f"{self.base}/health",
            "status": f"{self.base}/api/status",
            "smoke": {"username": "admin", "password": "${RUNBOOK_TEST_SECRET}"},
        } | settings


@pytest.fixture
def demo_app(tmp_path, app_database, secret):
    """Make a migrated copy of demo/ with a `.env` and `VERSION`; it answers once `serve`d."""

    def make(version: str = "1.0.0", database_url: str = app_database) -> App:
        folder = Path(shutil.copytree(DEMO, tmp_path / f"demo-{uuid.uuid4().hex[:8]}",
                                      ignore=shutil.ignore_patterns(".env", "VERSION", "uploads", "__pycache__")))
        migrated = subprocess.run(
            [sys.executable, "bin/migrate", "up"], cwd=folder, env=app_environment() | {"DATABASE_URL": app_database},
            capture_output=True, text=True, timeout=60,
        )
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        (folder / ".env").write_text(
            f"DATABASE_URL={database_url}\nAPP_SECRET_KEY={uuid.uuid4().hex}\nAPP_ADMIN_PASSWORD={secret}\n"
        )
        (folder / "VERSION").write_text(f"{version}\n")
        return App(folder, free_port())

    return make


def app_environment() -> dict[str, str]:
    """This process's environment without the app's variables: the app reads them from its `.env`."""
    return {k: v for k, v in os.environ.items() if k not in APP_VARIABLES}


class Gunicorns:
    """The gunicorns a test started; `stop` ends them all."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, app: App) -> None:
        with (app.folder.parent / f"{app.folder.name}.log").open("wb") as log:
            self.processes.append(subprocess.Popen(
                [str(GUNICORN), "--no-control-socket", "--chdir", str(app.folder),
                 "--bind", f"127.0.0.1:{app.port}", "app:application"],
                env=app_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))

    def serve(self, app: App) -> App:
        """Start the app and wait until it answers."""
        self.start(app)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.processes[-1].poll() is None, f"gunicorn exited with {self.processes[-1].returncode}"
            try:
                requests.get(f"{app.base}/health", timeout=HTTP_TIMEOUT)
                return app
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer within {STARTUP_SECONDS} s")

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture
def gunicorn():
    started = Gunicorns()
    yield started
    started.stop()


@dataclass
class Run:
    code: int
    output: str
    scenarios: list[dict]

    def scenario(self, name: str) -> dict:
        found = [s for s in self.scenarios if s["scenario"] == name]
        assert found, f"no scenario {name!r} in the results:\n{self.output}"
        return found[0]

    def evidence(self, name: str) -> str:
        """The evidence of every step of a scenario, as one text."""
        items = [e for step in self.scenario(name)["steps"] for e in step["evidence"]]
        return "\n".join(e.get("text") or json.dumps(e["findings"]) for e in items)


@pytest.fixture
def run_phase(tmp_path, secret):
    """Run `pytest -m PHASE --env FILE ...` as a user would; the secret must show nowhere in what it writes."""

    def run(phase: str, env_file: Path, *args: str) -> Run:
        results = tmp_path / f"{phase}-{uuid.uuid4().hex[:8]}.json"
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", phase, "--env", str(env_file), "--results", str(results),
             "-p", "no:cacheprovider", *args],
            cwd=ROOT, env=os.environ | {"RUNBOOK_TEST_SECRET": secret},
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
        )
        output, written = done.stdout + done.stderr, results.read_text()
        assert secret not in output and secret not in written
        return Run(done.returncode, output, json.loads(written))

    return run


def attempts_shown(evidence: str) -> int:
    match = re.search(r"answered 200 after (\d+) attempts? \(\d+\.\d s\)", evidence)
    assert match, evidence
    return int(match.group(1))


def test_health_passes_against_a_healthy_app_showing_version_and_schema(demo_app, gunicorn, make_env, run_phase):
    app = gunicorn.serve(demo_app("1.0.0"))
    run = run_phase("health", make_env({"endpoints": app.endpoints()}), "--release-version", "1.0.0")
    assert run.code == 0, run.output
    assert {s["scenario"]: s["outcome"] for s in run.scenarios} == {
        HEALTH_SCENARIO: "passed",
        VERSION_SCENARIO: "passed",
        "Step 10 - The database answers": "passed",
        "Step 10 - Every external service the application depends on answers": "passed",
    }
    assert attempts_shown(run.evidence(HEALTH_SCENARIO)) == 1
    status = run.evidence(VERSION_SCENARIO)
    assert f"{app.base}/api/status answered 200 after 1 attempt" in status
    assert '"version": "1.0.0"' in status and '"schema_version": "0002"' in status


def test_health_retries_until_the_app_answers(demo_app, gunicorn, make_env, run_phase):
    """The app's port turns the first request away and only then starts gunicorn: the check must wait for it."""
    app = demo_app("1.0.0")
    listener = socket.create_server(("127.0.0.1", app.port))
    listener.settimeout(PROCESS_TIMEOUT)

    def start_on_first_request() -> None:
        with listener:
            try:
                listener.accept()[0].close()
            except OSError:  # nobody came: the test fails on the results
                return
        gunicorn.start(app)

    door = threading.Thread(target=start_on_first_request, daemon=True)
    door.start()
    env = make_env({"endpoints": app.endpoints(attempts=120, interval=0.25)})
    run = run_phase("health", env, "--release-version", "1.0.0")
    door.join(timeout=HTTP_TIMEOUT)
    assert run.code == 0, run.output
    assert attempts_shown(run.evidence(HEALTH_SCENARIO)) > 1


def test_status_reporting_another_version_fails_naming_both_versions(demo_app, gunicorn, make_env, run_phase):
    app = gunicorn.serve(demo_app("1.0.0"))
    run = run_phase("health", make_env({"endpoints": app.endpoints(**QUICK)}), "--release-version", "2.0.0")
    assert run.code == 1, run.output
    found = run.scenario(VERSION_SCENARIO)
    assert found["outcome"] == "failed"
    assert found["message"].startswith(f"{app.base}/api/status reports version '1.0.0' (expected '2.0.0'); gave up after 3 attempts")
    assert run.scenario(HEALTH_SCENARIO)["outcome"] == "passed"


def test_health_answering_503_fails_after_the_configured_attempts(demo_app, gunicorn, make_env, run_phase):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = gunicorn.serve(demo_app("1.0.0", database_url=closed))
    run = run_phase("health", make_env({"endpoints": app.endpoints(**QUICK)}))
    assert run.code == 1, run.output
    found = run.scenario(HEALTH_SCENARIO)
    assert found["outcome"] == "failed"
    assert found["message"].startswith(f"{app.base}/health answered 503 (expected 200): ")
    assert re.search(r"; gave up after 3 attempts \(\d+\.\d s\)$", found["message"]), found["message"]


def test_a_smoke_client_keeps_one_connection_and_sends_no_cookie_an_answer_set(make_env):
    """The journeys' calls share a connection; a cookie the app sets never rides on a later call (a request
    meant to go without a login must not carry one)."""
    env = config.load_environment(str(make_env()))
    seen: list[tuple[int, str | None]] = []

    class SetsCookies(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append((self.client_address[1], self.headers.get("Cookie")))
            self.send_response(200)
            self.send_header("Set-Cookie", "session=from-an-answer; Path=/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SetsCookies)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = smoke.Client(f"http://127.0.0.1:{server.server_port}", 3, smoke.connections(env))
        for path in ("/first", "/second", "/third"):
            assert client.send("GET", path).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    assert [cookie for _, cookie in seen] == [None, None, None]
    assert len({port for port, _ in seen}) == 1


def test_smoke_journeys_pass_against_a_healthy_app_and_the_password_shows_nowhere(demo_app, gunicorn, make_env, run_phase):
    app = gunicorn.serve(demo_app("1.0.0"))
    run = run_phase("verification", make_env({"endpoints": app.endpoints()}))
    assert run.code == 0, run.output
    for name in [*SMOKE_SCENARIOS, "Step 11 - API endpoints refuse requests without a login"]:
        assert run.scenario(name)["outcome"] == "passed", run.scenario(name)
    authentication = run.evidence("Step 11 - User authentication works")
    assert f"logged in as admin at {app.base}" in authentication and "refused with 401" in authentication
    assert "read back equal" in run.evidence("Step 11 - Data processing works")
    assert "downloaded identical bytes" in run.evidence("Step 11 - File uploads and downloads work")
    assert run.evidence("Step 11 - API endpoints refuse requests without a login").count("refused with 401") == 4
    mobile = run.scenario("Step 12 - Mobile responsiveness")
    assert mobile["outcome"] == "skipped" and "no `ui` section" in mobile["message"], mobile


def test_missing_smoke_account_fails_the_smoke_scenarios_naming_the_setting(make_env, run_phase):
    run = run_phase("verification", make_env())
    assert run.code == 1, run.output
    for name in SMOKE_SCENARIOS:
        found = run.scenario(name)
        assert found["outcome"] == "failed" and "set endpoints.smoke" in found["message"], found


def test_probe_of_a_port_nobody_listens_on_names_the_url_error_and_attempts(make_env):
    url = f"http://127.0.0.1:{free_port()}/health"
    env = config.load_environment(str(make_env({"endpoints": {"health": url, **QUICK}})))
    with pytest.raises(CheckFailed) as failure:
        probes.answers(env, url, 200)
    assert re.fullmatch(rf"{re.escape(url)} did not answer: Connection refused; gave up after 3 attempts \(\d+\.\d s\)",
                        str(failure.value)), failure.value


def test_smoke_journeys_never_show_the_password_or_the_token(demo_app, gunicorn, make_env, secret, monkeypatch):
    monkeypatch.setenv("RUNBOOK_TEST_SECRET", secret)
    app = gunicorn.serve(demo_app("1.0.0"))
    env = config.load_environment(str(make_env({"endpoints": app.endpoints()})))
    assert smoke.base_url(env) == app.base
    client = smoke.log_in(env)
    found = [smoke.wrong_password_refused(env), smoke.item_round_trip(client), smoke.file_round_trip(client, 1024),
             *smoke.unauthenticated_refused(env)]
    assert all(f.ok for f in found), found
    assert redact(f"token {client.token}") == "token ***" and client.token not in repr(client)
    shown = " ".join([str(client), *map(str, found)])
    assert secret not in shown and client.token not in shown


def test_journeys_the_environment_does_not_list_are_not_applicable_saying_why(demo_app, gunicorn, make_env, run_phase):
    app = gunicorn.serve(demo_app("1.0.0"))
    run = run_phase("verification", make_env({"strict": True, "endpoints": app.endpoints()}))
    for name, journey in [("Step 11 - Message queue processing works", "message_queue"),
                          ("Step 11 - Cache operations work", "cache"),
                          ("Step 11 - External API calls work", "external_api")]:
        found = run.scenario(name)
        assert found["outcome"] == "not applicable", found
        assert found["message"].startswith(f"the app of test has no {journey} journey: endpoints.smoke.journeys in ")
        assert {s["status"] for s in found["steps"]} == {"not run"}

"""The demo app deployed by the tests: fresh databases, environment files, packages, runs of invoke."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
import yaml
from psycopg import sql

from runbook import ROOT, config, local

MACHINE_PG = "postgresql://postgres@127.0.0.1:5432"
SECRET = "canary-" + uuid.uuid4().hex
"""A secret value the tests set; it must never appear in a report, a record or the terminal."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_database():
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = f"runbook_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{MACHINE_PG}/{name}"
    finally:
        with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in, key by key; a None value removes the key."""
    result = dict(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def environment(folder: Path, database_url: str, state: Path) -> dict:
    """A working local-style environment in `folder`, without services (checks only)."""
    return {
        "name": "test",
        "description": "an environment made by a test",
        "hosts": [{"name": "localhost", "spec": "local://", "roles": ["app", "migrate"]}],
        "app": {
            "name": "demo",
            "root": str(folder / "app"),
            "package_dir": str(folder / "dist"),
            "config": [{
                "path": ".env", "mode": "0600", "database_url_as": "DATABASE_URL",
                "env": {"APP_SECRET_KEY": "${RUNBOOK_TEST_SECRET}", "APP_ADMIN_PASSWORD": "${RUNBOOK_TEST_SECRET}"},
            }],
        },
        "database": {"url": database_url, "backup_dir": str(folder / "backups")},
        "endpoints": {"health": "http://127.0.0.1:1/health", "status": "http://127.0.0.1:1/api/status"},
        "dependencies": [
            {"name": "cache", "role": "cache", "kind": "redis", "url": "redis://127.0.0.1:6379/0"},
            {"name": "queue", "role": "queue", "kind": "amqp", "url": "amqp://127.0.0.1:5672/%2F"},
            {"name": "uploads", "role": "storage", "kind": "storage", "path": str(folder / "app" / "shared")},
        ],
        "files": [{"path": str(folder / "backups"), "mode": "0700"}],
        "attestations": {"required": False},
        "local": {"state_dir": str(state)},
    }


WATCH = {"interval_seconds": 0.5, "baseline_seconds": 1, "bake_seconds": 2,
         "error_window_seconds": 1, "latency_window_seconds": 1, "latency_factor": 5,
         "latency_floor_seconds": 0.5, "min_requests": 4, "timeout": 0.45,
         "error_rate": 0.5, "source": {"requests_per_sample": 4}}
"""Short watch windows, so that a deploy ends soon. The error trigger fires above half of a window's eight
requests: the releases the tests make fail answer 500 to all of them, while on a busy two-core CI machine two
of them can outlast the 0.45 s timeout (a healthy deploy's bake fired on 25% in CI at a 20% threshold)."""


GUNICORN = "--workers 1 --threads 4"
"""How the tests' demo app serves: one process, four threads. The bake's critical smoke check logs in again as
soon as it has answered, and a login's PBKDF2 (600,000 rounds, 0.2 to 0.5 s on a busy two-core machine) held
a single synchronous worker so long that the prober's requests queued behind it outlasted their timeout: a
healthy first deploy's bake fired in CI (all of its first window's requests unanswered). Hashing releases the
GIL, so the other threads answer the prober meanwhile: beside two CPU-bound processes, a bake's p95 was 0.24
to 0.37 s with one synchronous worker, 0.03 to 0.06 s with four threads."""


def endpoints(base: str) -> dict:
    """The demo app's endpoints at `base` and its smoke test account. Probes that wait for a start are retried
    often and given up after 15 s. A request may take 10 s: a new worker's first login hashes twice (its admin
    row, then the password: two 600,000-round PBKDF2s), which outlasted 3 s on a two-core CI machine saturated
    by a rolling deploy under load beside another test."""
    return {"health": f"{base}/health", "status": f"{base}/api/status", "attempts": 40, "interval": 0.25,
            "timeout": 10, "settle_seconds": 15, "smoke": {"username": "admin", "password": "${RUNBOOK_TEST_SECRET}"}}


def with_app(data: dict, port: int) -> dict:
    """The environment with the demo app as its `web` service under supervisord and gunicorn on `port`."""
    base = f"http://127.0.0.1:{port}"
    command = (f"{{{{ bin }}}}/gunicorn --no-control-socket --chdir {{{{ current }}}} --bind 127.0.0.1:{port}"
               f" {GUNICORN} --timeout 30 app:application")
    return merge(data, {
        "app": {"migrations": {"after": [["{{ python }}", "bin/analyze"]]}},
        "services": [{"name": "web", "manager": "supervisord", "command": command}],
        "endpoints": endpoints(base),
        "rollback": {"protected_tables": ["users", "items", "files"]},
        "watch": WATCH,
    })


@dataclass
class Result:
    code: int
    output: str
    """Standard output and standard error together."""
    reports: Path
    stdout: str = ""

    @property
    def folder(self) -> Path:
        """This run's report folder, named on the last line the task printed."""
        marker = "record: "
        if marker in self.output:
            return Path(self.output.split(marker)[-1].split()[0]).parent
        (folder,) = [p for p in self.reports.iterdir() if p.is_dir()]
        return folder

    @property
    def record(self) -> dict:
        return json.loads((self.folder / "record.json").read_text())

    def scenario(self, name: str) -> dict:
        found = [s for p in self.record["phases"] for s in p["scenarios"] if s["scenario"] == name]
        assert found, f"no scenario {name!r} in the record"
        return found[0]


def invoke(reports: Path, *args: str, timeout: float = 300, extra_env: dict | None = None) -> Result:
    """Run an invoke task as a user would, in a child process; its reports go to `reports`. Its output is
    printed, so a failing test's captured output shows what every task it ran said, cause and all."""
    env = os.environ | {"RUNBOOK_REPORTS": str(reports), "RUNBOOK_TEST_SECRET": SECRET} | (extra_env or {})
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    print(f"$ invoke {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return Result(result.returncode, result.stdout + result.stderr, reports, result.stdout)


UNREHEARSED = {"database": {"drill": {"rehearse": False}}}
"""For tests of what the migrate phase does with a migration that fails, hangs or is still running: the
rehearsal on the drill's copy would run it first (and stop a failing one before anything changes)."""


def change_env(env_file: Path, *changes: dict) -> None:
    """Merge `changes` into the environment file, in order."""
    data = yaml.safe_load(env_file.read_text())
    for change in changes:
        data = merge(data, change)
    env_file.write_text(yaml.safe_dump(data, sort_keys=False))


SLOW_MIGRATION = ("-- migrate:up\nSELECT pg_sleep({seconds});\nCREATE TABLE slow (id int);\n"
                  "-- migrate:down\nDROP TABLE slow;\n")
"""A migration that takes `seconds`: a deploy that is still running while a test acts."""


def start_task(reports: Path, *args: str) -> subprocess.Popen:
    """An invoke task in the background, in a session of its own (so a test can kill it whole)."""
    env = os.environ | {"RUNBOOK_REPORTS": str(reports), "RUNBOOK_TEST_SECRET": SECRET}
    return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def kill_session(running: subprocess.Popen, seconds: float = 60) -> None:
    """SIGKILL every process of the session `running` leads (`start_task`'s) until none is left. Killing its
    process group is not enough: a command on a host runs under coreutils `timeout`, in a process group of its
    own, and would go on (a `switch` finishing after the kill, while the test reads the hosts)."""
    deadline = time.monotonic() + seconds
    while members := _session_members(running.pid):
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        running.poll()
        assert time.monotonic() < deadline, f"processes of the killed session still run: {members}"
        time.sleep(0.05)
    running.wait(timeout=seconds)


def _session_members(session: int) -> list[int]:
    """The live (not zombie) processes whose session is `session`."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            state, _, _, sid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:4]
            if int(sid) == session and state != "Z":
                members.append(int(pid))
    return members


def start_deploy(reports: Path, env_file: Path, version: str) -> subprocess.Popen:
    """`invoke deploy` in the background, in a session of its own."""
    return start_task(reports, "deploy", "--env", str(env_file), "--version", version)


def wait_for_phase(reports: Path, running: subprocess.Popen, version: str | None, phase: str, timeout: float = 120,
                   kind: str = "deploy", sequence: str = "deploy") -> None:
    """Wait until the running `kind` run (of `version`) has started `phase` of `sequence`, as its journal
    says; fail at once if the run ended instead."""
    deadline = time.monotonic() + timeout
    started = f'"phase started", "sequence": "{sequence}", "phase": "{phase}"'
    while time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()[0]
        for journal in reports.glob(f"*-{kind}-*/journal.jsonl"):
            text = journal.read_text()
            if (version is None or f'"version": "{version}"' in text) and started in text:
                return
        time.sleep(0.01)
    raise AssertionError(f"the {kind} never reached phase {phase} of its {sequence}")


def build(folder: Path, version: str, migrations: dict[str, str] | None = None, edit=None,
          files: dict[str, str] | None = None) -> Path:
    """A package of the demo in `folder/dist`, optionally changed: extra migrations, app.py edited, extra
    files at its top (e.g. RUNS_ON_SCHEMA)."""
    source = folder / f"src-{version}"
    shutil.copytree(ROOT / "demo", source)
    for name, text in (migrations or {}).items():
        (source / "migrations" / name).write_text(text)
    for name, text in (files or {}).items():
        (source / name).write_text(text)
    if edit:
        (source / "app.py").write_text(edit((source / "app.py").read_text()))
    result = invoke(folder / "reports", "package", "--version", version, "--source", str(source), "--name", "demo",
                    "--dest", str(folder / "dist"))
    assert result.code == 0, result.output
    return folder / "dist" / f"demo-{version}.tar.gz"


def broken_health(text: str) -> str:
    """app.py whose /health answers 500."""
    return text.replace('return json_response(HTTPStatus.OK, {"status": "ok"})',
                        'return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "broken"})')


def failing_after_requests(text: str, requests: int = 30) -> str:
    """app.py whose every answer is 500 once a worker has served `requests`: a release that degrades later."""
    return text.replace(
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:",
        "SERVED = [0]\n\n\n"
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:\n"
        "    SERVED[0] += 1\n"
        f"    if SERVED[0] > {requests}:\n"
        "        start_response('500 Internal Server Error', [('Content-Type', 'application/json')])\n"
        "        return [b'{\"error\": \"degraded\"}']",
    )


def once_marked(text: str, marker: Path, code: str) -> str:
    """app.py that runs `code` (lines of Python) at the start of every request once `marker` exists: a
    release that passes its verification and goes wrong when the test says so (e.g. when its bake starts)."""
    body = "".join(f"        {line}\n" for line in code.strip().splitlines())
    return text.replace(
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:",
        "def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:\n"
        f"    if os.path.exists({str(marker)!r}):\n{body}",
    )


def slow_once_marked(text: str, marker: Path, seconds: float = 1.0) -> str:
    """app.py answering every request after `seconds` once `marker` exists."""
    return once_marked(text, marker, f"time.sleep({seconds})")


def flapping_once_marked(text: str, marker: Path, period: float, share: float = 0.25) -> str:
    """app.py answering 500 to every request in the first `share` of each `period` seconds once `marker` exists."""
    return once_marked(text, marker, f"""
if time.time() % {period} < {share * period}:
    start_response('500 Internal Server Error', [('Content-Type', 'application/json')])
    return [b'{{"error": "flapping"}}']""")


class Load:
    """A steady request load: `threads` clients each asking `url` back to back (every request bounded by
    `timeout`) until stopped. Each answer is kept as (`time.time()` when sent, whether it was a 200,
    the `version` its JSON names, if any)."""

    def __init__(self, url: str, threads: int = 1, pause: float = 0.05, timeout: float = 5,
                 ca_file: Path | None = None) -> None:
        self.url, self.pause, self.timeout = url, pause, timeout
        self.verify = str(ca_file) if ca_file else True
        self.samples: list[tuple[float, bool, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.samples.sort()

    def _client(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                moment, ok, version = time.time(), False, None
                try:
                    answer = session.get(self.url, timeout=self.timeout, verify=self.verify)
                    ok = answer.status_code == 200
                    version = answer.json().get("version") if ok else None
                except (requests.RequestException, ValueError):
                    pass
                self.samples.append((moment, ok, version))
                self.stop.wait(self.pause)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.samples if not ok)

    def longest_gap(self) -> float:
        """The longest time between two successful answers (or from the first request to one)."""
        last_ok, gap = self.samples[0][0], 0.0
        for moment, ok, _ in self.samples:
            if ok:
                gap, last_ok = max(gap, moment - last_ok), moment
        return max(gap, self.samples[-1][0] - last_ok)

    def __str__(self) -> str:
        return (f"{self.failed} of {len(self.samples)} requests failed, longest time without a successful "
                f"answer {self.longest_gap():.2f} s")


class App:
    """The deployed demo app as a client sees it, and its database as an operator does."""

    def __init__(self, env_file: Path, base: str, database: str, folder: Path) -> None:
        self.env_file, self.base, self.database, self.folder = env_file, base, database, folder
        self.secret = SECRET

    def status(self) -> dict:
        return requests.get(f"{self.base}/api/status", timeout=5).json()

    def write_items(self, count: int) -> None:
        token = requests.post(f"{self.base}/api/login", json={"username": "admin", "password": self.secret},
                              timeout=5).json()["token"]
        for i in range(count):
            answer = requests.post(f"{self.base}/api/items", json={"name": f"customer data {i}"},
                                   headers={"Authorization": f"Bearer {token}"}, timeout=5)
            assert answer.status_code == 201, answer.text

    def rows(self) -> list[tuple]:
        """The items users wrote; the smoke test's own (`runbook-smoke-...`), which every verification of a
        deploy or a rollback adds, are left out."""
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            return conn.execute("SELECT id, name FROM items WHERE name NOT LIKE 'runbook-smoke-%' ORDER BY id").fetchall()

    def schema(self) -> str | None:
        with psycopg.connect(self.database, connect_timeout=5) as conn:
            return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


def new_state() -> Path:
    """A state folder of a test's own (kept short: HAProxy's runtime socket lives in it)."""
    return ROOT / ".local" / f"t-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def deployable(folder: Path, changes: dict | None = None, secret_password: bool = False, state: Path | None = None):
    """An environment in `folder` running the demo app under a supervisord of its own, torn down after.

    `secret_password`: the database URL carries the secret as its password (trust auth ignores it).
    `state`: its state folder (default: a new one under `.local/`), removed afterwards.
    """
    state = state or new_state()
    port = free_port()
    with fresh_database() as database:
        path = folder / "app-env.yaml"
        data = merge(with_app(environment(folder, database, state), port), changes or {})
        if secret_password:
            data["database"]["url"] = database.replace("postgres@", "postgres:${RUNBOOK_TEST_SECRET}@")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            yield App(path, f"http://127.0.0.1:{port}", database, folder)
        finally:
            if (state / "supervisor" / "supervisord.conf").exists():
                local.down(config.load_environment(str(path)))
            shutil.rmtree(state, ignore_errors=True)

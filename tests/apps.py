"""The demo app deployed by the tests: fresh databases, environment files, and the app as its clients and
operators see it (`deployable`, `App`). Runs of invoke are in `cli.py`, packages in `packages.py`."""

import contextlib
import shutil
import socket
import uuid
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


UNREHEARSED = {"database": {"drill": {"rehearse": False}}}
"""For tests of what the migrate phase does with a migration that fails, hangs or is still running: the
rehearsal on the drill's copy would run it first (and stop a failing one before anything changes)."""


def change_env(env_file: Path, *changes: dict) -> None:
    """Merge `changes` into the environment file, in order."""
    data = yaml.safe_load(env_file.read_text())
    for change in changes:
        data = merge(data, change)
    env_file.write_text(yaml.safe_dump(data, sort_keys=False))


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

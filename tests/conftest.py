"""Fixtures for the project's own tests: real PostgreSQL, Redis, RabbitMQ, and runbook runs as users
type them (`invoke ...` in a child process), each writing its reports into the test's own folder.
"""

import copy
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from runbook import ROOT, local

MACHINE_PG = "postgresql://postgres@127.0.0.1:5432"
TEST_STATE = ROOT / ".local" / "tests"
SECRET = "canary-" + uuid.uuid4().hex
"""A secret value the tests set; it must never appear in a report, a record or the terminal."""


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture(scope="session")
def database_url():
    """A fresh database on the machine's PostgreSQL for this test session, dropped at the end."""
    name = f"runbook_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{MACHINE_PG}/{name}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` merged in, key by key; a None value removes the key."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


@pytest.fixture
def make_env(tmp_path, database_url):
    """Write an environment file for this test: a working local-style base with `changes` merged in."""
    base = {
        "name": "test",
        "description": "an environment made by a test",
        "hosts": [{"name": "localhost", "spec": "local://", "roles": ["app", "migrate"]}],
        "app": {
            "name": "demo",
            "root": str(tmp_path / "app"),
            "package_dir": str(tmp_path / "dist"),
            "config": [{
                "path": ".env", "mode": "0600", "database_url_as": "DATABASE_URL",
                "env": {"APP_SECRET_KEY": "${RUNBOOK_TEST_SECRET}", "APP_ADMIN_PASSWORD": "${RUNBOOK_TEST_SECRET}"},
            }],
        },
        "database": {"url": database_url, "backup_dir": str(tmp_path / "backups")},
        "endpoints": {"health": "http://127.0.0.1:1/health", "status": "http://127.0.0.1:1/api/status"},
        "dependencies": [
            {"name": "cache", "role": "cache", "kind": "redis", "url": "redis://127.0.0.1:6379/0"},
            {"name": "queue", "role": "queue", "kind": "amqp", "url": "amqp://127.0.0.1:5672/%2F"},
            {"name": "uploads", "role": "storage", "kind": "storage", "path": str(tmp_path / "app" / "shared")},
        ],
        "files": [{"path": str(tmp_path / "backups"), "mode": "0700"}],
        "attestations": {"required": False},
        "local": {"state_dir": str(TEST_STATE)},
    }

    def write(changes: dict | None = None, name: str = "test.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(merge(base, changes or {}), sort_keys=False))
        return path

    return write


@dataclass
class Result:
    code: int
    output: str
    reports: Path

    @property
    def folder(self) -> Path:
        """The run's report folder (the only one under this test's reports)."""
        (folder,) = [p for p in self.reports.iterdir() if p.is_dir()]
        return folder

    @property
    def record(self) -> dict:
        return json.loads((self.folder / "record.json").read_text())

    def scenario(self, name: str) -> dict:
        found = [s for p in self.record["phases"] for s in p["scenarios"] if s["scenario"] == name]
        assert found, f"no scenario {name!r} in the record"
        return found[0]


@pytest.fixture
def invoke(tmp_path):
    """Run an invoke task as a user would, in a child process; reports go to this test's folder."""
    reports = tmp_path / "reports"

    def run(*args: str, timeout: float = 300, extra_env: dict | None = None) -> Result:
        env = os.environ | {"RUNBOOK_REPORTS": str(reports), "RUNBOOK_TEST_SECRET": SECRET} | (extra_env or {})
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=timeout,
        )
        return Result(result.returncode, result.stdout + result.stderr, reports)

    return run


@pytest.fixture(scope="session", autouse=True)
def stop_test_local_environment():
    """Stop the supervisord the tests' local-style environments started under .local/tests."""
    yield
    if (TEST_STATE / "supervisor" / "supervisord.conf").exists():
        local.supervisorctl(local.Paths(TEST_STATE), "shutdown")

"""Fixtures for the project's own tests: real PostgreSQL, Redis, RabbitMQ, and runbook runs as users
type them (`invoke ...` in a child process), each writing its reports into the test's own folder.
"""

import contextlib
import functools
import os

import pytest
import yaml

from runbook import ROOT, config, environments, local
from runbook.errors import ConfigError

from . import apps, cli, packages

TEST_STATE = ROOT / ".local" / f"tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
"""The local state (its supervisord) of the checks-only test environments: one per test worker."""


@pytest.fixture
def secret() -> str:
    return apps.SECRET


@pytest.fixture(scope="session")
def database_url():
    """A fresh database on the machine's PostgreSQL for this test session."""
    with apps.fresh_database() as url:
        yield url


@pytest.fixture
def make_env(tmp_path, database_url):
    """Write an environment file for this test: a working local-style base with `changes` merged in."""
    base = apps.environment(tmp_path, database_url, TEST_STATE)

    def write(changes: dict | None = None, name: str = "test.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(apps.merge(base, changes or {}), sort_keys=False))
        with contextlib.suppress(ConfigError):  # a test of a bad file expects the task itself to refuse it
            env = config.load_environment(str(path))
            if all(h.spec.startswith("local://") for h in env.hosts):  # remote hosts may be made not to answer
                environments.start(env)
        return path

    return write


@pytest.fixture
def invoke(tmp_path):
    """Run an invoke task as a user would; reports go to this test's folder."""
    return lambda *args, **kwargs: cli.invoke(tmp_path / "reports", *args, **kwargs)


@pytest.fixture
def app_env(tmp_path):
    """An environment whose `web` service is the demo app under a supervisord of its own and gunicorn."""
    with apps.deployable(tmp_path) as app:
        yield app


@pytest.fixture
def build(tmp_path):
    """Build a package of the demo (optionally changed) into this test's dist folder."""
    return functools.partial(packages.build, tmp_path)


@pytest.fixture(scope="session", autouse=True)
def stop_test_local_environment():
    """Stop the supervisord the tests' local-style environments started under TEST_STATE."""
    yield
    if (TEST_STATE / "supervisor" / "supervisord.conf").exists():
        local.supervisorctl(local.Paths(TEST_STATE), "shutdown")

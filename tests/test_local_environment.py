"""The embedded local environment: a private PostgreSQL cluster and supervisord under its state folder."""

import shutil
import socket
import uuid

import psycopg
import pytest
import yaml

from runbook import ROOT, config, local
from runbook.environments import open_environment

pytestmark = pytest.mark.usefixtures("stopped_after_module")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    """local.yaml itself with its own cluster (no database URL), HAProxy, instances and Prometheus, every port moved to a
    free one and every path into a state folder of its own."""
    state = ROOT / ".local" / f"test-cluster-{uuid.uuid4().hex[:8]}"
    folder = tmp_path_factory.mktemp("cluster")
    text = (ROOT / "environments" / "local.yaml").read_text().replace(".local/", f"{state}/")
    for port in ("8710", "8711", "8712", "8713", "8720", "8721", "8790", "54329"):
        text = text.replace(port, str(_free_port()))
    data = yaml.safe_load(text)
    data["dependencies"] = [d for d in data["dependencies"] if d["kind"] != "storage"]
    data["attestations"] = {"required": False}
    data["local"]["state_dir"] = str(state)
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    yield path
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def stopped_after_module(cluster_env):
    yield
    local.down(config.load_environment(str(cluster_env)))


def _pids(env) -> tuple[int, int]:
    paths = local.paths(env)
    postmaster = int((paths.pgdata / "postmaster.pid").read_text().split()[0])
    supervisord = int(local.supervisorctl(paths, "pid").stdout)
    return postmaster, supervisord


def test_local_up_starts_a_private_cluster_and_supervisord(cluster_env, invoke):
    result = invoke("local.up", "--env", str(cluster_env))
    assert result.code == 0, result.output
    assert "created PostgreSQL cluster" in result.output and "started supervisord" in result.output
    assert "wrote Prometheus's alert rules (5)" in result.output
    env = config.load_environment(str(cluster_env))
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{env.local.postgres_port}/demo", connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("demo",)
    for name in ("web-a", "web-b"):
        status = local.supervisorctl(local.paths(env), "status", name)
        assert name in status.stdout and "STOPPED" in status.stdout
    haproxy = local.supervisorctl(local.paths(env), "status", "haproxy").stdout
    assert "RUNNING" in haproxy or "STARTING" in haproxy, haproxy
    assert "generated the local CA" in result.output
    assert (env.app.releases).is_dir() and (env.app.shared).is_dir()
    assert oct(env.database.backup_dir.stat().st_mode & 0o777) == "0o700"


def test_second_local_up_changes_nothing(cluster_env, invoke):
    env = config.load_environment(str(cluster_env))
    before = _pids(env)
    result = invoke("local.up", "--env", str(cluster_env))
    assert result.code == 0 and "already up: nothing to do" in result.output, result.output
    assert _pids(env) == before


def test_preflight_passes_against_the_private_cluster(cluster_env, invoke, tmp_path):
    built = invoke("package", "--version", "2.0.0", "--dest", str(tmp_path / "dist"))
    assert built.code == 0, built.output
    data = yaml.safe_load(cluster_env.read_text())
    data["app"]["package_dir"] = str(tmp_path / "dist")
    env_file = tmp_path / "with-package.yaml"
    env_file.write_text(yaml.safe_dump(data))
    result = invoke("preflight", "--env", str(env_file), "--version", "2.0.0")
    assert result.code == 0, result.output
    database = result.scenario("Step 1 - Database connections are configured")["steps"][1]
    assert f"127.0.0.1:{data['local']['postgres_port']}/demo" in database["evidence"][0]["text"]
    balancer = result.scenario("Step 4 - Load balancers answer")
    assert balancer["outcome"] == "passed", balancer
    assert "no release is live yet (first deploy)" in str(balancer["steps"]), balancer
    assert result.scenario("Step 5 - SSL certificates are valid")["outcome"] == "passed"


def test_a_phase_of_a_run_that_saw_the_stack_up_does_not_look_again(cluster_env, invoke, monkeypatch):
    assert invoke("local.up", "--env", str(cluster_env)).code == 0
    looked = []
    monkeypatch.setattr(local, "is_up", lambda env: looked.append(env.name) or True)
    open_environment(str(cluster_env), start_local=False, seen_up=True)
    assert looked == []
    open_environment(str(cluster_env), start_local=False)
    assert len(looked) == 1


def test_local_down_stops_everything_it_started(cluster_env, invoke):
    env = config.load_environment(str(cluster_env))
    result = invoke("local.down", "--env", str(cluster_env))
    assert result.code == 0 and "stopped PostgreSQL" in result.output, result.output
    assert not local.is_up(env)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{env.local.postgres_port}/demo", connect_timeout=3)
    again = invoke("local.down", "--env", str(cluster_env))
    assert again.code == 0 and "already down" in again.output


def test_local_tasks_refuse_an_environment_that_is_not_local(invoke):
    result = invoke("local.up", "--env", "prod")
    assert result.code == 2 and "is not a local environment" in result.output

"""The local stack's load balancer: a real HAProxy terminating TLS with the local CA's certificate in front
of two real gunicorn instances, checked through its runtime API, and a rolling deploy that drains,
restarts and restores the instances one at a time while a client sends requests through it."""

import os
import shutil
import signal
import socket
import ssl
import time

import pytest
import requests
from cryptography import x509

from runbook import config, http
from runbook.checks import dependencies, tls as tls_check
from runbook.config import TlsEndpoint
from runbook.engine import sequences
from runbook.errors import ActionFailed, ConfigError
from runbook.local import haproxy as local_haproxy, paths, supervisorctl, tls
from runbook.release import haproxy, rollout

from . import apps, cli, packages, steady_load
from .prerequisites import require

pytestmark = pytest.mark.usefixtures("haproxy_installed")

GUNICORN = ("{{ bin }}/gunicorn --no-control-socket --chdir {{ current }} --bind 127.0.0.1:%d --workers 2"
            " --timeout 30 app:application")


@pytest.fixture(scope="module")
def haproxy_installed():
    require(None if shutil.which("haproxy") else "HAProxy is not installed (apt-get install haproxy)")


def balanced(state, front: int, a: int, b: int, exporter: int) -> dict:
    """The demo as two instances behind the stack's HAProxy, its endpoints https through it."""
    ca = str(state / "tls" / "ca.pem")
    return {
        "services": [{"name": "web-a", "manager": "supervisord", "command": GUNICORN % a},
                     {"name": "web-b", "manager": "supervisord", "command": GUNICORN % b}],
        "load_balancer": {"socket": str(state / "haproxy" / "admin.sock"), "backend": "app", "servers": [
            {"name": "web-a", "service": "web-a", "address": f"127.0.0.1:{a}"},
            {"name": "web-b", "service": "web-b", "address": f"127.0.0.1:{b}"}]},
        "rollout": {"strategy": "rolling"},
        "deadlines": {"drain": 30},
        "endpoints": {"health": f"https://localhost:{front}/health", "status": f"https://localhost:{front}/api/status",
                      "ca_file": ca},
        "dependencies": [{"name": "haproxy", "role": "load_balancer", "kind": "haproxy",
                          "url": f"https://localhost:{front}/health", "ca_file": ca}],
        "tls": [{"host": "localhost", "port": front, "ca_file": ca}],
        "local": {"haproxy": {"port": front, "exporter_port": exporter, "check_interval_ms": 300}},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The demo 1.0.0 deployed behind HAProxy, 1.1.0 built beside it."""
    folder = tmp_path_factory.mktemp("lb")
    state = apps.new_state()
    front, a, b, exporter = (apps.free_port() for _ in range(4))
    with apps.deployable(folder, balanced(state, front, a, b, exporter), state=state) as app:
        packages.build(folder, "1.0.0")
        packages.build(folder, "1.1.0")
        deployed = cli.invoke(folder / "reports-1.0.0", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert deployed.code == 0, deployed.output
        app.base = f"https://localhost:{front}"
        yield app


def environment(app) -> config.Environment:
    return config.load_environment(str(app.env_file))


def wait_for(env, server: str, status: str, seconds: float = 30) -> haproxy.ServerStat:
    deadline = time.monotonic() + seconds
    while (stat := haproxy.server(env.load_balancer, server)).status != status:
        assert time.monotonic() < deadline, f"HAProxy never saw {server} {status}: {stat}"
        time.sleep(0.1)
    return stat


def test_runtime_api_commands_are_built_from_backend_server_and_state():
    assert haproxy.set_state("app", "web-a", "drain") == "set server app/web-a state drain"
    assert haproxy.set_state("app", "web-b", "ready") == "set server app/web-b state ready"


def test_a_configuration_haproxy_refuses_is_a_config_error_with_its_words(tmp_path):
    bad = tmp_path / "haproxy.cfg"
    bad.write_text("frontend broken\n    bind 127.0.0.1:notaport\n")
    with pytest.raises(ConfigError) as refused:
        local_haproxy.validate(bad)
    assert "HAProxy refuses the configuration" in str(refused.value) and "notaport" in str(refused.value)


def test_local_rolling_deploy_and_rollback_rotate_instead_of_reloading():
    env = config.load_environment("environments/local.yaml")
    deploy = [p.name for p in sequences.deploy_sequence(env)]
    back = [p.name for p in sequences.rollback_sequence(env)]
    assert "rotate" in deploy and "reload" not in deploy and "drain" not in deploy
    assert deploy.index("switch") < deploy.index("rotate")
    assert back.index("switch-back") < back.index("rotate") and "reload" not in back


def test_the_certificate_verifies_against_the_local_ca_and_not_without_it(stack):
    env = environment(stack)
    ca = env.endpoints.ca_file
    files = tls.files(paths(env))
    assert oct(files.ca_key.stat().st_mode & 0o777) == oct(files.server.stat().st_mode & 0o777) == "0o600"
    port = env.local.haproxy.port
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("localhost", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as conn:
        cert = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert http.request("GET", f"https://localhost:{port}/health", timeout=5, ca_file=ca).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        http.request("GET", f"https://localhost:{port}/health", timeout=5)
    assert tls_check.check(TlsEndpoint(host="localhost", port=port, ca_file=ca), 14).ok
    untrusted = tls_check.check(TlsEndpoint(host="localhost", port=port), 14)
    assert not untrusted.ok and "certificate not valid" in untrusted.detail


def test_the_load_balancer_probe_fails_naming_the_server_whose_instance_is_stopped(stack):
    env = environment(stack)
    (dep,) = env.dependencies
    (healthy,) = dependencies.probe(env, dep)
    assert healthy.ok and "web-a UP" in healthy.detail and "web-b UP" in healthy.detail, healthy.detail
    supervisorctl(paths(env), "stop", "web-b")
    try:
        wait_for(env, "web-b", "DOWN")
        (finding,) = dependencies.probe(env, dep)
        assert not finding.ok, finding.detail
        assert "web-b DOWN" in finding.detail and "web-a UP" in finding.detail, finding.detail
    finally:
        supervisorctl(paths(env), "start", "web-b")
        wait_for(env, "web-b", "UP")


def test_the_load_balancer_probe_judges_a_server_between_states_once_its_checks_settle(stack):
    """An instance that misses one health check (stopped for it, as a busy one just started can be) is
    `UP 1/2` until the next check: the probe waits for that one instead of failing the deploy."""
    env = environment(stack)
    (dep,) = env.dependencies
    wait_for(env, "web-b", "UP")
    group = int(supervisorctl(paths(env), "pid", "web-b").stdout)
    os.killpg(group, signal.SIGSTOP)
    try:
        wait_for(env, "web-b", "UP 1/2", seconds=10)
    finally:
        os.killpg(group, signal.SIGCONT)
    (finding,) = dependencies.probe(env, dep)
    assert finding.ok and "web-b UP (" in finding.detail, finding.detail


def held_session(env) -> ssl.SSLSocket:
    """A request through HAProxy whose body never comes: the instance answering it keeps a session."""
    context = ssl.create_default_context(cafile=str(env.endpoints.ca_file))
    conn = context.wrap_socket(socket.create_connection(("localhost", env.local.haproxy.port), timeout=5),
                               server_hostname="localhost")
    conn.sendall(b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    return conn


def test_a_drain_whose_sessions_never_end_hits_its_deadline_and_returns_the_server(stack):
    env = environment(stack)
    env = env.model_copy(update={"deadlines": env.deadlines.model_copy(update={"drain": 2})})
    conn = held_session(env)
    try:
        deadline = time.monotonic() + 10
        while not (busy := [s for s in haproxy.servers(env.load_balancer) if s.sessions]):
            assert time.monotonic() < deadline, "the held request never reached an instance"
            time.sleep(0.05)
        with pytest.raises(ActionFailed) as failed:
            rollout.rotate(env, env.hosts[0], "1.0.0")
        message = str(failed.value)
        assert f"app/{busy[0].name}: its sessions did not reach zero within 2 s (deadlines.drain)" in message
        assert "with 1 session" in message
        assert haproxy.server(env.load_balancer, busy[0].name).status == "UP"  # returned as it was
    finally:
        conn.close()


def test_a_rolling_deploy_through_haproxy_loses_no_request(stack):
    env = environment(stack)
    with steady_load.Load(f"{stack.base}/api/status", threads=2, ca_file=env.endpoints.ca_file) as load:
        result = cli.invoke(stack.folder / "reports-1.1.0", "deploy", "--env", str(stack.env_file),
                             "--version", "1.1.0")
    assert result.code == 0, result.output
    assert load.failed == 0, load
    assert len(load.samples) > 20, load
    versions = [version for _, _, version in load.samples]
    assert versions[0] == "1.0.0" and versions[-1] == "1.1.0"
    (rotate,) = [p for p in result.record["phases"] if p["name"] == "rotate"]
    evidence = "\n".join(rotate["evidence"])
    for server in ("web-a", "web-b"):
        assert f"set server app/{server} state drain: no session left" in evidence, evidence
        assert f"set server app/{server} state ready: UP" in evidence, evidence
    assert evidence.index("app/web-a state ready") < evidence.index("app/web-b state drain")
    assert {s.name: s.status for s in haproxy.settled(env.load_balancer, 30)} == {"web-a": "UP", "web-b": "UP"}


def test_a_rollback_through_haproxy_rotates_the_instances_back_and_loses_no_request(stack):
    env = environment(stack)
    assert requests.get(f"{stack.base}/api/status", timeout=5, verify=str(env.endpoints.ca_file)).json()[
        "version"] == "1.1.0", "runs after the rolling deploy of 1.1.0"
    with steady_load.Load(f"{stack.base}/api/status", threads=2, ca_file=env.endpoints.ca_file) as load:
        result = cli.invoke(stack.folder / "reports-rollback", "rollback", "--env", str(stack.env_file))
    assert result.code == 0, result.output
    assert load.failed == 0, load
    assert [version for _, _, version in load.samples][-1] == "1.0.0"
    (rotate,) = [p for p in result.record["phases"] if p["name"] == "rotate"]
    evidence = "\n".join(rotate["evidence"])
    assert all(f"set server app/{s} state ready: UP" in evidence for s in ("web-a", "web-b")), evidence


@pytest.mark.parametrize("changes, words", [
    ({"load_balancer": {"socket": "/run/lb.sock", "backend": "app",
                        "servers": [{"name": "web-a", "service": "nope", "address": "127.0.0.1:1"}]}},
     "load_balancer.servers name services ['nope'] that are not among the services"),
    ({"rollout": {"drain": ["true"]}, "load_balancer": {"socket": "/run/lb.sock", "backend": "app",
      "servers": [{"name": "web", "service": "web", "address": "127.0.0.1:1"}]},
      "services": [{"name": "web", "manager": "supervisord", "command": "true"}]},
     "give either `load_balancer`"),
    ({"dependencies": [{"name": "lb", "role": "load_balancer", "kind": "haproxy", "url": "https://localhost:1/"}]},
     "a haproxy dependency needs a `load_balancer` section"),
    ({"load_balancer": {"socket": "/run/lb.sock", "backend": "app", "servers": [
        {"name": "web-1", "service": "web", "host": "web9", "address": "127.0.0.1:1"}]},
      "services": [{"name": "web", "manager": "supervisord", "command": "true"}]},
     "load_balancer.servers name hosts ['web9'] that are not among the hosts"),
])
def test_a_load_balancer_setting_that_does_not_fit_the_environment_is_refused(make_env, invoke, changes, words):
    result = invoke("preflight", "--env", str(make_env(changes)))
    assert result.code == 2 and words in result.output, result.output

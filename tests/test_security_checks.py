"""Step 5's security checks on real sockets, files and a deployed demo app: a listener nobody declared fails
the firewall check, a secret file with a loose mode fails access controls, and the app's audit log records
the check's own login."""

import json
import socket
from pathlib import Path

import pytest
import yaml

from runbook import config
from runbook.checks import security
from runbook.checks.security import Socket, parse_listening
from runbook.config.security import Audit
from runbook.errors import ConfigError
from runbook.findings import NotConfigured

from . import apps

SS = """\
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*
LISTEN 0      4096       127.0.0.1:6379      0.0.0.0:*
LISTEN 0      128             [::]:22           [::]:*
LISTEN 0      4096           [::1]:5432         [::]:*
LISTEN 0      4096               *:4369            *:*
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
LISTEN 0      50   [::ffff:127.0.0.1]:8080         *:*
LISTEN 0      50   [fe80::1%eth0]:9100          [::]:*
"""


def test_ss_output_is_read_as_address_and_port_in_both_families():
    assert parse_listening(SS) == [
        Socket("0.0.0.0", 22), Socket("127.0.0.1", 6379), Socket("::", 22), Socket("::1", 5432),
        Socket("*", 4369), Socket("127.0.0.53", 53), Socket("::ffff:127.0.0.1", 8080), Socket("fe80::1", 9100),
    ]
    assert parse_listening("") == []


def test_only_loopback_addresses_count_as_loopback_and_wildcards_do_not():
    loopback = {str(s) for s in parse_listening(SS) if s.loopback}
    assert loopback == {"127.0.0.1:6379", "[::1]:5432", "127.0.0.53:53", "[::ffff:127.0.0.1]:8080"}


def test_a_line_that_is_not_a_socket_is_refused_naming_it():
    with pytest.raises(ValueError, match="not-an-address"):
        parse_listening("LISTEN 0 128 not-an-address:22 0.0.0.0:*")


def _environment(tmp_path: Path, section: dict | None) -> config.Environment:
    """A checks-only environment on this machine (nothing started) with `section` as its `security`."""
    data = apps.environment(tmp_path, "postgresql://postgres@127.0.0.1:5432/unused", tmp_path / "state")
    path = tmp_path / "security.yaml"
    path.write_text(yaml.safe_dump(data | ({"security": section} if section is not None else {}), sort_keys=False))
    return config.load_environment(str(path))


@pytest.fixture
def listener():
    """A TCP socket listening on every IPv4 address, on a free port: what no firewall rule declared."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_listener_on_every_address_fails_the_firewall_check_until_it_is_declared(tmp_path, listener):
    # This machine runs other services beyond loopback too: the check is scoped to the test's own port.
    scoped = {"only_ports": [listener]}
    (found,) = security.listening(_environment(tmp_path, {"listening": scoped}))
    assert not found.ok and f"listens on 0.0.0.0:{listener}" in found.detail, found
    other_address = {"exposed": [{"port": listener, "address": "10.1.2.3"}]}
    (found,) = security.listening(_environment(tmp_path, {"listening": scoped | other_address}))
    assert not found.ok, found
    declared = {"exposed": [{"port": listener, "host": "localhost", "address": "0.0.0.0"}]}
    (found,) = security.listening(_environment(tmp_path, {"listening": scoped | declared}))
    assert found.ok and f"beyond loopback only 0.0.0.0:{listener}, as declared" in found.detail, found


def test_a_listener_on_loopback_only_passes_undeclared(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        (found,) = security.listening(_environment(tmp_path, {"listening": {"only_ports": [port]}}))
    assert found.ok and "none beyond loopback" in found.detail, found


def test_an_exposed_socket_for_a_host_the_environment_lacks_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"security.listening.exposed names hosts \['web9'\]"):
        _environment(tmp_path, {"listening": {"exposed": [{"port": 443, "host": "web9"}]}})
    with pytest.raises(ConfigError, match=r"security.listening.exposed\[0\].adress .*unknown key"):
        _environment(tmp_path, {"listening": {"exposed": [{"port": 443, "adress": "0.0.0.0"}]}})


def test_a_secret_file_with_a_loose_mode_fails_naming_path_and_mode(tmp_path):
    secret = tmp_path / "api-token"
    secret.write_text("not telling\n")
    secret.chmod(0o644)
    env = _environment(tmp_path, {"secret_files": [{"path": str(secret), "mode": "0600"}]})
    (found,) = security.secret_files(env)
    assert not found.ok and found.detail == f"{secret}: mode is 0644 (required 0600)", found
    secret.chmod(0o600)
    (found,) = security.secret_files(env)
    assert found.ok, found


def test_without_a_security_section_the_checks_cannot_run(tmp_path):
    env = _environment(tmp_path, None)
    for check in (security.listening, security.secret_files, security.audit_records_login):
        with pytest.raises(NotConfigured, match="no security section"):
            check(env)


def test_the_deployed_demo_app_audits_the_checks_own_login(tmp_path, build, invoke, monkeypatch, secret):
    (config_file,) = apps.environment(tmp_path, "", tmp_path)["app"]["config"]
    config_file["env"]["APP_AUDIT_LOG"] = "logs/audit.log"
    log = tmp_path / "app" / "shared" / "logs" / "audit.log"
    changes = {"app": {"linked_dirs": ["uploads", "logs"], "config": [config_file]},
               "security": {"audit": {"log": str(log)}}}
    with apps.deployable(tmp_path, changes) as app:
        data = yaml.safe_load(app.env_file.read_text())
        data["security"]["listening"] = {"only_ports": [int(app.base.rsplit(":", 1)[1])]}
        app.env_file.write_text(yaml.safe_dump(data, sort_keys=False))
        build("1.0.0")
        deployed = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert deployed.code == 0, deployed.output

        gate = invoke("preflight", "--env", str(app.env_file), "--version", "1.0.0")
        for name in ("Step 5 - Firewall rules allow only the declared ports", "Step 5 - Access controls are in place",
                     "Step 5 - Audit logging is enabled"):
            assert gate.scenario(name)["outcome"] == "passed", gate.scenario(name)
        evidence = json.dumps(gate.scenario("Step 5 - Audit logging is enabled")["steps"])
        assert "recorded the login as" in evidence and '\\"action\\": \\"login\\"' in evidence, evidence
        assert secret not in evidence

        monkeypatch.setenv("RUNBOOK_TEST_SECRET", secret)
        env = config.load_environment(str(app.env_file))
        (found,) = security.audit_records_login(env)
        assert found.ok, found
        event = json.loads(found.detail.split("recorded the login as ", 1)[1])
        assert event["actor"] == "admin" and event["subject"] == "user admin" and event["time"].endswith("Z")
        assert json.dumps(event) in log.read_text().splitlines()[-1]

        elsewhere = env.security.model_copy(update={"audit": Audit(log=str(tmp_path / "other.log"))})
        (found,) = security.audit_records_login(env.model_copy(update={"security": elsewhere}))
        assert not found.ok and "no event for the login of admin" in found.detail, found
        assert "No such file or directory" in found.detail, found

        env_file = tmp_path / "app" / "current" / ".env"
        env_file.resolve().chmod(0o644)
        failed = [f for f in security.secret_files(env) if not f.ok]
        assert [f.detail for f in failed] == [f"{env_file}: mode is 0644 (required 0600)"], failed

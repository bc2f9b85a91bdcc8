"""The runbook on a staging-shaped environment: three real systemd hosts (nspawn) from an Ansible
inventory, the demo app as the systemd unit `web` on each, HAProxy on the runner as the load balancer,
the machine's PostgreSQL, Redis and RabbitMQ through the shared address (see systemd_app.py).

Nothing here asserts a time: the watch and bake windows and the deadlines are short only so that a run
ends soon.
"""

import html

import pytest

from runbook import config
from runbook.config import Service
from runbook.release import haproxy, services

from . import apps, prerequisites, steady_load
from .systemd_app import UNIT, hang_systemctl, missing, systemd_fleet

BROKEN = "raise SystemExit('this release cannot load: APP_BROKEN_SETTING is missing')\n"
"""What a release's app.py starts with when it cannot load: the unit's import check refuses it."""


def broken(text: str) -> str:
    first = "from __future__ import annotations\n"
    assert first in text
    return text.replace(first, first + BROKEN, 1)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    prerequisites.require(missing())
    with systemd_fleet(tmp_path_factory.mktemp("systemd-fleet")) as made:
        yield made


@pytest.fixture
def app(fleet, tmp_path):
    with apps.fresh_database() as database:
        yield fleet.app(tmp_path, database)


def phase(result, name: str, sequence: str = "deploy") -> dict:
    found = [p for p in result.record["phases"] if p["name"] == name and p["sequence"] == sequence]
    assert found, f"no {sequence} phase {name!r}: {[(p['sequence'], p['name']) for p in result.record['phases']]}"
    return found[0]


def on_release(app, fleet, version: str) -> None:
    """Every host serves `version` from `current`, its unit active, and HAProxy sends clients to them."""
    for host in fleet.hosts:
        assert app.current(host).endswith(f"-{version}"), host.name
        assert app.served_version(host) == version, host.name
        assert app.systemctl(host, "is-active", UNIT) == "active", host.name
    assert app.through_balancer("/api/status").json()["version"] == version


def test_systemds_diagnosis_is_its_state_its_properties_and_its_journal():
    env = config.Environment(name="t", hosts=[config.Host(name="h", spec="local://")], app={"name": "d", "root": "/srv"},
                             database={"url": "postgresql://db/app", "backup_dir": "/srv/b"},
                             endpoints={"health": "http://h/health", "status": "http://h/api/status"})
    chosen = services.manager(env, Service(name="web", manager="systemd"))
    assert chosen.state_command() == ["systemctl", "is-failed", "web"]
    assert chosen.evidence_commands() == [["systemctl", "show", "-p", "ActiveState,SubState,Result", "web"],
                                          ["journalctl", "-u", "web", "-n", "50", "--no-pager", "-q"]]
    assert chosen.prepare_command("start") == ["systemctl", "reset-failed", "web"]
    assert chosen.prepare_command("reload") is None


def test_maintenance_deploy_reaches_the_three_systemd_hosts_behind_haproxy(app, fleet, invoke, build):
    build("1.0.0")
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
    assert result.code == 0, result.output
    assert [h["name"] for h in result.record["hosts"]] == ["host1", "host2", "host3"]
    names = [p["name"] for p in result.record["phases"] if p["sequence"] == "deploy"]
    assert names.index("stop") < names.index("switch") < names.index("start"), names
    on_release(app, fleet, "1.0.0")
    lb = config.load_environment(str(app.env_file)).load_balancer
    assert sorted((s.name, s.status) for s in haproxy.servers(lb)) == [(h.name, "UP") for h in fleet.hosts]


def test_rolling_deploy_under_load_through_haproxy_fails_no_request(app, fleet, invoke, build):
    build("1.0.0")
    build("1.1.0")
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    app.change({"rollout": {"strategy": "rolling"}})
    with steady_load.Load(f"{app.front}/api/status", threads=3) as load:
        result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 0, result.output
    print(f"rolling deploy under load: {load}")
    assert load.failed == 0, load
    versions = [version for _, _, version in load.samples]
    assert versions[0] == "1.0.0" and versions[-1] == "1.1.0", load
    rotated = phase(result, "rotate")
    assert [line for line in rotated["evidence"] if "state drain" in line and "no session left" in line], rotated
    on_release(app, fleet, "1.1.0")


def test_a_release_whose_unit_fails_to_start_names_systemds_failed_state_shows_its_journal_and_is_rolled_back(
        app, fleet, invoke, build):
    build("1.0.0")
    build("1.1.0", edit=broken)
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    started = phase(result, "start")
    assert started["outcome"] == "failed"
    assert "start web failed: Job for web.service failed" in started["error"], started["error"]
    assert "systemd says web is failed" in started["error"], started["error"]
    journal = [item for item in started["evidence"] if "journalctl -u web -n 50 --no-pager -q" in item]
    assert journal and "APP_BROKEN_SETTING is missing" in journal[0], started["evidence"]
    assert any("ActiveState=failed" in item for item in started["evidence"]), started["evidence"]
    page = html.unescape((result.folder / started["report"]).read_text())
    assert "APP_BROKEN_SETTING is missing" in page and "systemd says web is failed" in page
    assert phase(result, "start", "rollback")["outcome"] == "passed"
    assert phase(result, "verify-rollback", "rollback")["outcome"] == "passed"
    on_release(app, fleet, "1.0.0")


def test_a_reload_that_fails_keeps_the_old_release_serving_and_is_rolled_back(app, fleet, invoke, build):
    """Rolling without the load balancer's runtime API: the unit is reloaded in place, and refuses."""
    build("1.0.0")
    build("1.1.0", edit=broken)
    app.change({"rollout": {"strategy": "rolling"}, "load_balancer": None})
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    reloaded = phase(result, "reload")
    assert reloaded["outcome"] == "failed"
    assert "reload web failed: Job for web.service failed" in reloaded["error"], reloaded["error"]
    assert "systemd says web is active" in reloaded["error"], reloaded["error"]
    assert any("APP_BROKEN_SETTING is missing" in item for item in reloaded["evidence"]), reloaded["evidence"]
    assert phase(result, "reload", "rollback")["outcome"] == "passed"
    on_release(app, fleet, "1.0.0")


def test_rollback_returns_every_systemd_host_to_the_previous_release(app, fleet, invoke, build):
    build("1.0.0")
    build("1.1.0")
    for version in ("1.0.0", "1.1.0"):
        assert invoke("deploy", "--env", str(app.env_file), "--version", version).code == 0
    on_release(app, fleet, "1.1.0")
    result = invoke("rollback", "--env", str(app.env_file))
    assert result.code == 0, result.output
    assert phase(result, "start", "rollback")["outcome"] == "passed"
    on_release(app, fleet, "1.0.0")


def test_a_host_whose_systemctl_hangs_is_stopped_at_the_services_deadline_and_a_human_is_told(
        app, fleet, invoke, build):
    build("1.0.0")
    build("1.1.0")
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    app.change({"deadlines": {"services": 3, "command": 10}})
    hang_systemctl(fleet.hosts[1])
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 3, result.output
    said = "host host2: `systemctl stop web` did not finish within 3 s (deadline services); it was stopped"
    assert said in phase(result, "stop")["error"], phase(result, "stop")["error"]
    assert "A HUMAN IS NEEDED" in result.output and "Traceback" not in result.output, result.output

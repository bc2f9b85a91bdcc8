"""The runbook on a fleet: three real hosts (sshd in network namespaces, see fleet.py) reached over ssh
from an Ansible inventory, each running the demo app under its own supervisord, all of them using the
machine's PostgreSQL, Redis and RabbitMQ through the fleet's shared address (see fleet_app.py).

Nothing here asserts a time: the watch and bake windows are short only so that a deploy ends soon.
"""

import os
import subprocess
from pathlib import Path

import pytest

from . import apps, cli, packages
from . import fleet as fleets, prerequisites
from .fleet_app import fleet_app
from .netns import COMMON

UNHEALTHY = COMMON / "unhealthy"
"""A marker on a host: the release built with `unhealthy_with_marker` answers /health with 500 there."""

MIGRATED_ON = COMMON / "migrated-on"
"""Each host where the migrations ran writes its name here (see `migrations_leave_a_mark`)."""


@pytest.fixture(scope="module")
def can_make_namespaces():
    prerequisites.require(fleets.can_make_namespaces())


@pytest.fixture
def hosts(can_make_namespaces, tmp_path):
    """Three hosts of their own for each test, reaching the machine's services at the shared address."""
    with fleets.fleet(3, tmp_path / "fleet", forward=fleets.MACHINE_SERVICES) as made:
        yield made


@pytest.fixture
def database():
    with apps.fresh_database() as url:
        yield url


@pytest.fixture
def app(hosts, tmp_path, database):
    with fleet_app(hosts, tmp_path, database) as made:
        yield made


def unhealthy_with_marker(text: str) -> str:
    """app.py whose /health answers 500 on a host that has the UNHEALTHY marker."""
    original = "def health(request: Request) -> Response:\n"
    assert original in text
    return text.replace(original, original + (
        f"    if Path({str(UNHEALTHY)!r}).exists():\n"
        "        return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {\"status\": \"unhealthy on this host\"})\n"))


def migrations_leave_a_mark(app) -> None:
    """The migrations run through a shell that first writes the host's name into MIGRATED_ON."""
    app.change({"app": {"migrations": {"up": [
        "sh", "-c", f'hostname >> {MIGRATED_ON} && exec "$@"', "sh", "{{ python }}", "bin/migrate", "up"]}}})


def findings(scenario: dict) -> list[dict]:
    """Every finding row of a scenario's steps."""
    return [row for step in scenario["steps"] for item in step.get("evidence", [])
            for row in item.get("findings", [])]


def tree(root: Path) -> dict[str, str]:
    """Every path under a host's folder (its supervisor's logs and pid aside), with a link's target or a
    file's size: what a run changed shows as a difference."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != root / "supervisor"]
        for name in dirs + files:
            path = Path(folder, name)
            shown = os.readlink(path) if path.is_symlink() else ("dir" if path.is_dir() else str(path.stat().st_size))
            found[str(path.relative_to(root))] = shown
    return found


def phase(record: dict, name: str, sequence: str = "deploy") -> dict:
    found = [p for p in record["phases"] if p["name"] == name and p["sequence"] == sequence]
    assert found, f"no {sequence} phase {name!r} in the record: {[p['name'] for p in record['phases']]}"
    return found[0]


def test_fleet_preflight_names_an_unreachable_host_and_a_full_disk_and_passes_the_third(app, hosts, invoke, build):
    build("1.0.0")
    app.change({"ssh": {"connect_timeout": 3}})
    passing, gone, full = hosts[0], hosts[1], hosts[2]
    # A tiny filesystem over the host's own COMMON, in its mount namespace only, filled past the threshold.
    filled = hosts.ssh(full, f"set -e; mount -t tmpfs -o size=1m runbook-full {COMMON}; "
                             f"mkdir -p {COMMON}/app/shared {COMMON}/backups; "
                             f"head -c 960k /dev/zero > {COMMON}/filler; df -P {COMMON}")
    assert filled.returncode == 0, filled.stderr
    assert not (full.root / "filler").exists()
    hosts.unreachable(gone)
    try:
        result = invoke("preflight", "--env", str(app.env_file), "--version", "1.0.0")
    finally:
        hosts.reachable(gone)
        hosts.ssh(full, f"umount {COMMON}")
    assert result.code == 1, result.output

    reachable = result.scenario("Step 1 - The environment is available and accessible")
    assert reachable["outcome"] == "failed"
    assert f"host {gone.name}: does not answer" in reachable["message"]
    rows = {row["subject"]: row for row in findings(reachable)}
    assert rows[f"host {passing.name}"]["ok"] and rows[f"host {full.name}"]["ok"]
    assert not rows[f"host {gone.name}"]["ok"]

    disk = result.scenario("Step 1 - Disk space is available")
    assert disk["outcome"] == "failed"
    assert f"host {full.name}: disk free on {COMMON} is" in disk["message"], disk["message"]
    assert "required at least 20%" in disk["message"]
    rows = {row["subject"]: row for row in findings(disk)}
    assert rows[f"host {passing.name}"]["ok"], rows
    assert not rows[f"host {full.name}"]["ok"]

    # The terminal names both blocking failures with their hosts.
    assert "BLOCKING: Step 1 - The environment is available and accessible" in result.output
    assert f"host {gone.name}" in result.output and f"host {full.name}: disk free on {COMMON}" in result.output
    # Whatever failed, nothing failed on the third host: every finding about it passed.
    about_passing = [row for p in result.record["phases"] for s in p["scenarios"] for row in findings(s)
                     if row["subject"] == f"host {passing.name}"]
    assert about_passing and all(row["ok"] for row in about_passing), about_passing


def test_deploy_reaches_every_host_backing_up_and_migrating_once(app, hosts, invoke, build):
    build("1.0.0")
    migrations_leave_a_mark(app)
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
    assert result.code == 0, result.output
    record = result.record
    assert record["outcome"] == "passed"
    assert [h["name"] for h in record["hosts"]] == ["host1", "host2", "host3"]
    assert {h["name"]: set(h["roles"]) for h in record["hosts"]} == {
        "host1": {"app", "web", "migrate"}, "host2": {"app", "web"}, "host3": {"app", "web"}}

    live = app.current(hosts[0])
    assert live and live.endswith("-1.0.0")
    for host in hosts:
        assert app.current(host) == live, host.name
        assert app.status(host) == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}, host.name

    # One backup, taken on the backup host (the first) and named after the release.
    backup = record["backup"]
    assert backup["host"] == hosts[0].name and backup["path"] == f"{COMMON}/backups/{live}.dump"
    assert sorted(os.listdir(hosts[0].root / "backups")) == [f"{live}.dump"]
    for host in hosts[1:]:
        assert os.listdir(host.root / "backups") == [], host.name
    # The migrations ran once, on the migrate host.
    assert record["migrations"]["applied"] == ["0001", "0002"] and app.schema() == "0002"
    assert (hosts[0].root / MIGRATED_ON.name).read_text() == "host1\n"
    for host in hosts[1:]:
        assert not (host.root / MIGRATED_ON.name).exists(), host.name
    assert (hosts[0].root / "app" / "runbook-state.json").exists()
    assert not (hosts[0].root / "app" / "runbook.lock").exists()


def test_rolling_deploy_goes_in_batches_draining_each_host_before_its_switch(app, hosts, invoke, build, tmp_path):
    build("1.0.0")
    build("1.1.0")
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    log = tmp_path / "lb.log"
    app.change({"rollout": {
        "strategy": "rolling", "serial": [1, "100%"], "max_fail_percentage": 0,
        "drain": ["sh", "-c", f"echo drain {{{{ name }}}} >> {log}"],
        "restore": ["sh", "-c", f"echo restore {{{{ name }}}} >> {log}"],
    }})
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 0, result.output

    live = app.current(hosts[0])
    assert live.endswith("-1.1.0")
    for host in hosts:
        assert app.current(host) == live and app.served_version(host) == "1.1.0", host.name

    # Two batches: host1 alone, then the rest.
    record = result.record
    switched = {p["name"]: p for p in record["phases"] if p["sequence"] == "deploy" and p["name"].startswith("switch")}
    assert sorted(switched) == ["switch-1", "switch-2"], sorted(switched)
    assert "batch 1 of 2: host1)" in switched["switch-1"]["title"]
    assert "batch 2 of 2: host2, host3)" in switched["switch-2"]["title"]
    assert all(p["outcome"] == "passed" for p in record["phases"])

    lines = log.read_text().split("\n")[:-1]
    assert sorted(lines) == sorted(f"{what} {h.name}" for h in hosts for what in ("drain", "restore")), lines
    assert lines[:2] == ["drain host1", "restore host1"], lines
    for host in hosts:
        assert lines.index(f"drain {host.name}") < lines.index(f"restore {host.name}"), lines


def test_second_batch_failing_its_health_check_brings_every_host_back(app, hosts, invoke, build):
    build("1.0.0")
    build("1.1.0", edit=unhealthy_with_marker)
    assert invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0").code == 0
    before = app.current(hosts[0])
    (hosts[2].root / UNHEALTHY.name).touch()
    app.change({"rollout": {"serial": [1, "100%"], "max_fail_percentage": 0}})

    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    for host in hosts:
        assert app.current(host) == before, host.name
        assert app.status(host) == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}, host.name
    record = result.record
    assert record["outcome"] == "failed"
    failed = [p for p in record["phases"] if p["outcome"] == "failed"]
    assert [p["name"] for p in failed] == ["hosts-2"], [(p["name"], p["error"]) for p in failed]
    assert "batch 2 of 2: host2, host3)" in failed[0]["title"]
    assert "host host3" in failed[0]["error"] and "host host2" not in failed[0]["error"]
    assert "host host3" in record["rollback"]["reason"] and "batch 2 of 2" in record["rollback"]["reason"]
    assert record["rollback"]["to"] == before
    assert phase(record, "verify-rollback", "rollback")["outcome"] == "passed"


def test_a_host_whose_key_does_not_match_is_refused_and_nothing_changes(hosts, tmp_path, database, invoke, build):
    build("1.0.0")
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True, timeout=30)
    kind, key = (tmp_path / "impostor.pub").read_text().split()[:2]
    wrong = hosts[1]
    known = [f"{wrong.address} {kind} {key}" if line.startswith(f"{wrong.address} ") else line
             for line in hosts.known_hosts.read_text().splitlines()]
    (tmp_path / "known_hosts").write_text("\n".join(known) + "\n")
    with fleet_app(hosts, tmp_path, database, known_hosts=tmp_path / "known_hosts") as app:
        before = {host.name: tree(host.root) for host in hosts}
        result = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert result.code == 1, result.output
        assert f"host {wrong.name}" in result.output and "Host key verification failed" in result.output
        reachable = result.scenario("Step 1 - The environment is available and accessible")
        assert reachable["outcome"] == "failed"
        assert f"host {wrong.name}: does not answer" in reachable["message"]
        assert "Host key verification failed" in reachable["message"]
        ran = [p["name"] for p in result.record["phases"] if p["outcome"] != "not run"]
        assert ran == ["preflight"] and len(result.record["phases"]) > 1
        assert {host.name: tree(host.root) for host in hosts} == before
        assert app.schema() is None
        assert all(app.served_version(host) is None for host in hosts)


def test_a_second_deploy_while_one_runs_is_refused_naming_the_holder(app, hosts, invoke, build, tmp_path):
    apps.change_env(app.env_file, apps.UNREHEARSED)
    build("1.0.0", {"0003_slow.sql": packages.SLOW_MIGRATION.format(seconds=20)})
    running = cli.start_deploy(tmp_path / "reports", app.env_file, "1.0.0")
    try:
        cli.wait_for_phase(tmp_path / "reports", running, "1.0.0", "migrate", timeout=240)
        second = invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert second.code == 2, second.output
        assert "fleet is locked by run" in second.output and f"process {running.pid}" in second.output
    finally:
        output, _ = running.communicate(timeout=400)
    assert running.returncode == 0, output
    for host in hosts:
        assert app.served_version(host) == "1.0.0", host.name
    assert app.schema() == "0003"
    assert not (hosts[0].root / "app" / "runbook.lock").exists()


def test_a_host_lost_mid_phase_ends_in_the_contract_with_the_state_of_each_host(app, hosts, invoke, build, tmp_path):
    """ssh to host3 fails (exit 255) from the middle of the deploy on: every such failure is a phase's,
    never a traceback; the rollback cannot reach host3 either, so a human is told each host's state."""
    apps.change_env(app.env_file, apps.UNREHEARSED)
    build("1.0.0", {"0003_slow.sql": packages.SLOW_MIGRATION.format(seconds=6)})
    reports = tmp_path / "reports"
    running = cli.start_deploy(reports, app.env_file, "1.0.0")
    cli.wait_for_phase(reports, running, "1.0.0", "migrate", timeout=240)
    hosts.unreachable(hosts[2])
    output, _ = running.communicate(timeout=400)
    assert running.returncode == 3, output
    assert "Traceback" not in output
    human = output[output.index("A HUMAN IS NEEDED"):]
    assert "host3: unknown" in human and "host1: current" in human, human
    assert (next(reports.glob("*-deploy-*")) / "record.json").exists()

    hosts.reachable(hosts[2])
    recovered = invoke("rollback", "--env", str(app.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert all(app.served_version(host) is None for host in hosts)
    assert app.schema() is None
    assert not (hosts[0].root / "app" / "runbook.lock").exists()

"""A deploy killed with SIGKILL at each phase: `invoke status` tells the truth and changes nothing, the
next deploy is refused naming the killed run, and `rollback --break-lock` (twice) ends on the release
that served before, on its schema, with every customer row unchanged."""

import json
import re

import pytest

from . import apps, cli
from .recovery import kill_at, last_record, lock_file, on_1_0_0, rows_kept, snapshot

PHASES = ["announce", "backup", "prepare", "configure", "stop", "switch", "migrate", "start", "indexes",
          "verify-deploy", "bake"]
"""From the first phase after the lock to the last before `finish`; a kill in `finish` is the window test's
(the run may already have recorded its release as live)."""

MIGRATED = PHASES[PHASES.index("start"):]
"""Phases a killed deploy reaches only after 1.1.0's migration added its column: the recovery's plan reverts it."""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The demo app on 1.0.0 with customer rows; every test leaves it there again."""
    with on_1_0_0(tmp_path_factory.mktemp("killed-deploys")) as app:
        yield app


def _recovers(live: apps.App, reports, rows) -> None:
    before = snapshot(live)
    status = cli.invoke(reports, "status", "--env", str(live.env_file))
    assert status.code == 0 and "UNFINISHED:  deploy 1.1.0" in status.output, status.output
    assert "stale: its process is gone" in status.output
    assert snapshot(live) == before, "invoke status changed the environment"

    again = cli.invoke(reports, "deploy", "--env", str(live.env_file), "--version", "1.1.0")
    assert again.code == 2 and "is locked by run" in again.output and "--break-lock" in again.output, again.output

    recovered = cli.invoke(reports, "rollback", "--env", str(live.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002"
    assert rows_kept(live, rows)
    assert not lock_file(live).exists()
    record = last_record(reports, "rollback")
    assert record["crashed_run"]["description"].startswith("run ")
    plan = record.get("rollback_plan")
    if record["crashed_run"]["phase"] in MIGRATED:
        assert plan and plan["schema_now"] == "0003", record
    if plan:  # killed while migrating: the down parts run whatever the schema reads, after the migrate command
        down = plan["schema_now"] == "0003" or record["crashed_run"]["phase"] == "migrate"
        assert plan["path"] == ("down migrations" if down else "code only") and plan["schema_after"] == "0002", plan
        assert not down or plan["dropped"][0]["column"] == "notes", plan

    twice = cli.invoke(reports, "rollback", "--env", str(live.env_file), "--break-lock")
    assert twice.code == 0 and "nothing to recover" in twice.output, twice.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)


@pytest.mark.parametrize("phase", PHASES)
def test_deploy_killed_at_a_phase_is_recovered_to_the_release_before(live, tmp_path, phase):
    rows = live.rows()
    kill_at(live, tmp_path, phase, "deploy", "--env", str(live.env_file), "--version", "1.1.0", version="1.1.0")
    assert lock_file(live).exists()
    _recovers(live, tmp_path, rows)
    history = (tmp_path / "index.html").read_text()  # the kill lands at or just after `phase`
    assert re.search(r"killed in [a-z-]+, recovered by <a href=\"[^\"]*-rollback-", history), history


def test_deploy_killed_after_recording_its_end_but_before_unlocking_keeps_its_release(live, tmp_path):
    """The window between the last state write and the unlock, recreated exactly: the lock as the
    finishing run held it, left behind by a run that then recorded its release as live."""
    rows = live.rows()
    running = cli.start_deploy(tmp_path, live.env_file, "1.1.0")
    cli.wait_for_phase(tmp_path, running, "1.1.0", "finish")
    held = lock_file(live).read_bytes()
    output, _ = running.communicate(timeout=300)
    assert running.returncode == 0, output
    lock_file(live).write_bytes(held)

    recovered = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--break-lock")
    assert recovered.code == 0 and "only its lock was left" in recovered.output, recovered.output
    assert live.status()["version"] == "1.1.0" and live.schema() == "0003" and rows_kept(live, rows)
    assert not lock_file(live).exists()
    back = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert back.code == 0, back.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)


def test_break_lock_with_no_crashed_run_stops_and_switches_nothing(live, tmp_path):
    before, serving = snapshot(live), live.status()
    for _ in range(2):
        result = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--break-lock")
        assert result.code == 0 and "nothing to recover" in result.output, result.output
        outcomes = {p["name"]: p["outcome"] for p in last_record(tmp_path, "rollback")["phases"]}
        assert outcomes["stop"] == outcomes["switch-back"] == outcomes["database"] == "skipped", outcomes
    assert snapshot(live) == before and live.status() == serving


def test_a_refused_recovery_keeps_the_killed_runs_lock_for_the_next_break_lock(live, tmp_path):
    rows = live.rows()
    kill_at(live, tmp_path, "start", "deploy", "--env", str(live.env_file), "--version", "1.1.0", version="1.1.0")
    held = json.loads(lock_file(live).read_text())
    [target] = (live.folder / "app" / "releases").glob("*-1.0.0")
    hidden = target.rename(tmp_path / target.name)
    try:
        refused = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--break-lock")
        assert refused.code == 2 and f"release {target.name} is not on" in refused.output, refused.output
        assert "the lock of" in refused.output and "is kept with the intent of the killed run" in refused.output
        kept = json.loads(lock_file(live).read_text())
        same = ("release", "return_to", "return_schema", "backup", "snapshot")
        assert {k: kept["intent"][k] for k in same} == {k: held["intent"][k] for k in same}, (kept, held)
    finally:
        hidden.rename(target)
    recovered = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--break-lock")
    assert recovered.code == 0 and "stopped during phase 'plan' of its rollback" in recovered.output, recovered.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)
    assert not lock_file(live).exists()

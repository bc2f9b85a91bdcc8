"""Rollbacks killed with SIGKILL (a deploy's own, and a manual one) resume the same rollback; refused
rollbacks (a pruned target, a target whose file changed) leave nothing behind; SIGTERM is a failure of the
running phase."""

import os
import signal
import shutil

import pytest

from . import apps, cli, packages
from .recovery import kill_at, last_record, lock_file, on_1_0_0, rows_kept, snapshot


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The demo app on 1.0.0 with customer rows; every test leaves it there again."""
    with on_1_0_0(tmp_path_factory.mktemp("killed-rollbacks")) as app:
        yield app


def _back_on_1_0_0(live: apps.App, reports, rows) -> None:
    recovered = cli.invoke(reports, "rollback", "--env", str(live.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)
    assert not lock_file(live).exists()
    assert "UNFINISHED" not in cli.invoke(reports, "status", "--env", str(live.env_file)).output


@pytest.mark.parametrize("phase", ["stop", "database", "switch-back", "start", "verify-rollback"])
def test_deploy_killed_during_its_rollback_is_recovered_by_the_same_rollback(live, tmp_path, phase):
    rows = live.rows()
    kill_at(live, tmp_path, phase, "deploy", "--env", str(live.env_file), "--version", "1.2.0",
            sequence="rollback", version="1.2.0")
    _back_on_1_0_0(live, tmp_path, rows)
    assert last_record(tmp_path, "rollback")["crashed_run"]["phase"] in ("lock", "plan", "stop", "database",
                                                                         "switch-back", "start", "verify-rollback")


@pytest.mark.parametrize("phase", ["stop", "database", "start"])
def test_manual_rollback_killed_midway_resumes_the_same_rollback(live, tmp_path, phase):
    deployed = cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0")
    assert deployed.code == 0, deployed.output
    rows = live.rows()
    kill_at(live, tmp_path, phase, "rollback", "--env", str(live.env_file), kind="rollback", sequence="rollback")
    _back_on_1_0_0(live, tmp_path, rows)


def test_manual_rollback_killed_while_planning_changes_nothing(live, tmp_path):
    assert cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0").code == 0
    rows = live.rows()
    kill_at(live, tmp_path, "plan", "rollback", "--env", str(live.env_file), kind="rollback", sequence="rollback")
    recovered = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert "no release folder holds its down migrations" not in recovered.output
    assert live.status()["version"] == "1.1.0" and live.schema() == "0003" and rows_kept(live, rows)
    back = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert back.code == 0 and live.status()["version"] == "1.0.0", back.output


def test_refused_rollback_leaves_nothing_for_the_next_deploy_to_trip_on(live, tmp_path):
    before = snapshot(live)
    nothing = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert nothing.code == 2 and "no previous release to roll back to" in nothing.output, nothing.output
    unknown = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file), "--to", "20200101T000000Z-0.1.0")
    assert unknown.code == 2 and "is not a release that was live" in unknown.output, unknown.output
    assert snapshot(live)["current"] == before["current"] and not lock_file(live).exists()
    deployed = cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0")
    assert deployed.code == 0, deployed.output
    assert cli.invoke(tmp_path, "rollback", "--env", str(live.env_file)).code == 0


def test_rollback_to_a_pruned_release_is_refused_with_nothing_changed(live, tmp_path):
    assert cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0").code == 0
    rows = live.rows()
    releases = live.folder / "app" / "releases"
    (previous,) = [p for p in releases.iterdir() if p.name.endswith("-1.0.0")]
    hidden = live.folder / "pruned"
    shutil.move(previous, hidden)
    try:
        refused = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
        assert refused.code == 2 and f"release {previous.name} is not on localhost" in refused.output, refused.output
        assert live.status()["version"] == "1.1.0" and live.schema() == "0003" and rows_kept(live, rows)
        assert not lock_file(live).exists()
    finally:
        shutil.move(hidden, previous)
    assert cli.invoke(tmp_path, "rollback", "--env", str(live.env_file)).code == 0


def _plan(result: cli.Result) -> list[str]:
    return next(p for p in result.record["phases"] if p["name"] == "plan")["evidence"]


def test_rollback_to_an_untouched_release_trusts_the_file_states_prepare_recorded(live, tmp_path):
    assert cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0").code == 0
    back = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert back.code == 0, back.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002"
    assert any("unchanged (inode, size and change time) since it matched MANIFEST.sha256" in line
               for line in _plan(back)), _plan(back)


def test_rollback_to_a_release_whose_file_changed_with_its_times_put_back_is_refused(live, tmp_path):
    assert cli.invoke(tmp_path, "deploy", "--env", str(live.env_file), "--version", "1.1.0").code == 0
    rows = live.rows()
    (previous,) = [p for p in (live.folder / "app" / "releases").iterdir() if p.name.endswith("-1.0.0")]
    app_py = previous / "app.py"
    original, times = app_py.read_bytes(), app_py.stat()
    changed = original.replace(b"def ", b"deF ", 1)  # the same size, in place (the same inode)
    assert changed != original
    with app_py.open("r+b") as f:
        f.write(changed)
    os.utime(app_py, ns=(times.st_atime_ns, times.st_mtime_ns))  # the times put back: only the change time shows it
    assert (app_py.stat().st_ino, app_py.stat().st_size) == (times.st_ino, times.st_size)
    refused = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert refused.code == 2 and f"cannot roll back to {previous.name}" in refused.output, refused.output
    assert "app.py: FAILED" in refused.output and live.status()["version"] == "1.1.0"
    assert live.schema() == "0003" and rows_kept(live, rows) and not lock_file(live).exists()
    app_py.write_bytes(original)  # the same bytes again, a new change time: every file is read again
    back = cli.invoke(tmp_path, "rollback", "--env", str(live.env_file))
    assert back.code == 0, back.output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)
    assert f"every file of {previous.name} matches MANIFEST.sha256 on localhost" in _plan(back), _plan(back)


def test_sigterm_during_migrate_rolls_back_to_the_release_before(live, tmp_path):
    packages.build(live.folder, "1.3.0", {"0003_slow.sql": packages.SLOW_MIGRATION.format(seconds=6)})
    rows = live.rows()
    running = cli.start_deploy(tmp_path, live.env_file, "1.3.0")
    cli.wait_for_phase(tmp_path, running, "1.3.0", "migrate")
    os.kill(running.pid, signal.SIGTERM)
    output, _ = running.communicate(timeout=300)
    assert running.returncode == 1, output
    assert "SIGTERM received" in output and "interrupted by SIGTERM" in output
    assert live.status()["version"] == "1.0.0" and live.schema() == "0002" and rows_kept(live, rows)
    assert not lock_file(live).exists()


def test_a_rollback_that_fails_too_says_the_state_of_every_host_and_the_command_to_run(app_env, build, invoke):
    apps.change_env(app_env.env_file, apps.UNREHEARSED)  # its down part fails: the rehearsal would stop it
    build("1.0.0")
    build("1.1.0", {"0003_stuck.sql": "-- migrate:up\nCREATE TABLE stuck (id int);\n-- migrate:down\nSELECT 1/0;\n"},
          edit=packages.broken_health)
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    failed = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert failed.code == 3, failed.output
    human = failed.output[failed.output.index("A HUMAN IS NEEDED"):]
    assert "localhost: current 20" in human and "-1.1.0" in human and "web stopped" in human, human
    assert "database schema: 0003" in human
    assert f"invoke rollback --env {app_env.env_file} --break-lock" in human

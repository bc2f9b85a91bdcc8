"""`invoke deploy` and `invoke rollback` on a local-style environment: the demo app under a real
supervisord and gunicorn, a real PostgreSQL database, real backups, migrations and HTTP checks.
"""

import json
import os
import signal
import subprocess

import psycopg
import pytest
import yaml

from .apps import UNREHEARSED, change_env
from .cli import start_deploy, wait_for_phase
from .packages import SLOW_MIGRATION, broken_health, failing_after_requests

MIGRATION_1_1 = """-- migrate:up
ALTER TABLE items ADD COLUMN note text NOT NULL DEFAULT '';
-- migrate:down
ALTER TABLE items DROP COLUMN note;
"""


def test_deploy_upgrade_failed_release_rolls_back_and_manual_rollback_returns_to_the_first(app_env, build, invoke, tmp_path):
    build("1.0.0")
    build("1.1.0", {"0003_item_notes.sql": MIGRATION_1_1})
    build("1.2.0", {"0003_item_notes.sql": MIGRATION_1_1,
                    "0004_tags.sql": "-- migrate:up\nCREATE TABLE tags (name text);\n-- migrate:down\nDROP TABLE tags;\n"},
          edit=broken_health)
    first = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert first.code == 0, first.output
    assert app_env.status()["version"] == "1.0.0" and app_env.schema() == "0002"
    app_env.write_items(3)

    second = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert second.code == 0, second.output
    assert app_env.status() == {"app": "demo", "version": "1.1.0", "schema_version": "0003"}
    record = second.record
    assert record["migrations"]["applied"] == ["0003"] and record["backup"]["tables"]
    assert os.path.exists(record["backup"]["path"]) and record["backup"]["size_bytes"] > 0
    app_env.write_items(2)
    rows_before = app_env.rows()

    broken = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.2.0")
    assert broken.code == 1, broken.output
    assert app_env.status() == {"app": "demo", "version": "1.1.0", "schema_version": "0003"}
    assert app_env.rows() == rows_before
    record = broken.record
    assert record["outcome"] == "failed"
    assert record["rollback"]["reason"].startswith("Health checks (Step 10) failed:")
    assert "HTTP 500" in record["rollback"]["reason"] or "500" in record["rollback"]["reason"]
    assert record["rollback"]["to"].endswith("-1.1.0") and record["rollback"]["schema"] == "0003"
    data = next(p for p in record["phases"] if p["sequence"] == "rollback" and p["name"] == "verify-rollback")
    assert data["outcome"] == "passed"
    page = (broken.folder / "index.html").read_text()
    assert "Rolled back: Health checks (Step 10) failed" in page

    back = invoke("rollback", "--env", str(app_env.env_file))
    assert back.code == 0, back.output
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}
    assert app_env.rows() == rows_before

    status = invoke("status", "--env", str(app_env.env_file), "--json")
    found = json.loads(status.output)
    assert found["live"]["version"] == "1.0.0" and found["schema_version"] == "0002" and found["lock"] == "free"
    assert found["last_run"]["kind"] == "rollback" and found["last_run"]["outcome"] == "rolled back"


@pytest.mark.parametrize("version", ["1.0/../../etc", "1.0 beta", "1.0;touch /tmp/x", "$(id)", ".."])
def test_unsafe_version_is_refused_before_anything_runs(invoke, app_env, version, tmp_path):
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", version)
    assert result.code == 2 and "is not valid" in result.output
    assert not (tmp_path / "reports").exists()


def test_missing_package_is_refused(invoke, app_env):
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "9.9.9")
    assert result.code == 2 and "demo-9.9.9.tar.gz does not exist" in result.output


def test_package_whose_checksums_do_not_match_stops_at_the_gate_and_changes_nothing(invoke, app_env, build, tmp_path):
    build("1.0.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    build("1.1.0")
    archive = tmp_path / "dist" / "demo-1.1.0.tar.gz"
    subprocess.run(["sh", "-c", f"mkdir x && cd x && tar -xzf {archive} && echo '# changed' >> demo-1.1.0/app.py "
                    f"&& tar -czf {archive} demo-1.1.0"], cwd=tmp_path, check=True, timeout=60)
    releases_before = sorted(os.listdir(tmp_path / "app" / "releases"))
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1
    assert "checksum differs from the manifest for: app.py" in result.output
    assert app_env.status()["version"] == "1.0.0"
    assert sorted(os.listdir(tmp_path / "app" / "releases")) == releases_before
    assert "lock:        free" in invoke("status", "--env", str(app_env.env_file)).output


def test_migration_failing_halfway_is_undone_and_the_previous_release_serves(invoke, app_env, build):
    change_env(app_env.env_file, UNREHEARSED)
    build("1.0.0")
    build("1.1.0", {"0003_half.sql": "-- migrate:up\nCREATE TABLE half (id int);\nSELECT 1/0;\n"
                                    "-- migrate:down\nDROP TABLE half;\n"})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    assert "migration 0003_half failed" in result.output and "division by zero" in result.output
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}
    with psycopg.connect(app_env.database, connect_timeout=5) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)


def test_a_migration_failing_on_the_drills_copy_stops_the_deploy_before_anything_changes(invoke, app_env, build):
    build("1.0.0")
    build("1.1.0", {"0003_half.sql": "-- migrate:up\nCREATE TABLE half (id int);\nSELECT 1/0;\n"
                                    "-- migrate:down\nDROP TABLE half;\n"})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    app_env.write_items(3)
    rows, releases_before = app_env.rows(), sorted(os.listdir(app_env.folder / "app" / "releases"))
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    assert "[deploy] backup: failed" in result.output, result.output
    assert "rehearsal of 0003_half: its up part failed on the copy: division by zero" in result.output
    ran = [p["name"] for p in result.record["phases"] if p["outcome"] != "not run"]
    assert "stop" not in ran and "migrate" not in ran, ran
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}
    assert sorted(os.listdir(app_env.folder / "app" / "releases")) == releases_before
    assert app_env.rows() == rows
    with psycopg.connect(app_env.database, connect_timeout=5) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)


def test_release_whose_service_does_not_start_is_rolled_back(invoke, app_env, build):
    build("1.0.0")
    build("1.1.0", edit=lambda text: text + "\nraise RuntimeError('this release cannot boot')\n")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    assert "[deploy] start: failed" in result.output and "web" in result.output
    assert app_env.status()["version"] == "1.0.0"


def test_rollback_without_a_previous_release_is_refused(invoke, app_env, build):
    build("1.0.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("rollback", "--env", str(app_env.env_file))
    assert result.code == 2 and "has no previous release to roll back to" in result.output
    assert app_env.status()["version"] == "1.0.0"
    assert "lock:        free" in invoke("status", "--env", str(app_env.env_file)).output


def test_second_deploy_while_one_runs_is_refused_naming_the_holder(invoke, app_env, build):
    change_env(app_env.env_file, UNREHEARSED)
    build("1.0.0")
    build("1.1.0", {"0003_slow.sql": SLOW_MIGRATION.format(seconds=8)})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    running = start_deploy(app_env.folder / "reports", app_env.env_file, "1.1.0")
    try:
        wait_for_phase(app_env.folder / "reports", running, "1.1.0", "migrate")
        second = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
        assert second.code == 2, second.output
        assert "is locked by run" in second.output and f"process {running.pid}" in second.output
    finally:
        output, _ = running.communicate(timeout=300)
    assert running.returncode == 0, output


def test_deploy_killed_midway_is_reported_and_recovered_with_one_command(invoke, app_env, build):
    change_env(app_env.env_file, UNREHEARSED)
    build("1.0.0")
    build("1.1.0", {"0003_slow.sql": SLOW_MIGRATION.format(seconds=3)})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    app_env.write_items(2)
    rows = app_env.rows()
    running = start_deploy(app_env.folder / "reports", app_env.env_file, "1.1.0")
    wait_for_phase(app_env.folder / "reports", running, "1.1.0", "migrate")
    os.killpg(running.pid, signal.SIGKILL)
    running.wait(timeout=60)

    status = invoke("status", "--env", str(app_env.env_file))
    assert "UNFINISHED:  deploy 1.1.0" in status.output and "stopped during 'migrate'" in status.output
    assert "stale: its process is gone" in status.output
    again = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert again.code == 2 and "is locked by run" in again.output and "--break-lock" in again.output

    recovered = invoke("rollback", "--env", str(app_env.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}
    assert app_env.rows() == rows
    assert "UNFINISHED" not in invoke("status", "--env", str(app_env.env_file)).output


def test_restore_db_discards_writes_since_the_backup_and_says_so(invoke, app_env, build, tmp_path):
    build("1.0.0")
    build("1.1.0", {"0003_item_notes.sql": MIGRATION_1_1}, edit=broken_health)
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    app_env.write_items(2)
    rows = app_env.rows()
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0", "--restore-db")
    assert result.code == 1, result.output
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0002"}
    assert app_env.rows() == rows
    record = result.record
    assert record["database_restored"]["backup"] == record["backup"]["path"]
    assert "every write made since it was taken was discarded" in record["database_restored"]["note"]
    assert "writes made after it was taken are discarded" in result.output


def test_old_releases_are_pruned_keeping_the_current_and_the_rollback_target(invoke, app_env, build, tmp_path):
    env_file = app_env.env_file
    data = yaml.safe_load(env_file.read_text())
    data["app"]["keep_releases"] = 2
    env_file.write_text(yaml.safe_dump(data))
    deployed = []
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        build(version)
        deployed.append(invoke("deploy", "--env", str(env_file), "--version", version))
        assert deployed[-1].code == 0, deployed[-1].output
    releases = sorted(os.listdir(tmp_path / "app" / "releases"))
    assert [r.split("-", 1)[1] for r in releases] == ["1.1.0", "1.2.0"]
    assert sorted(os.listdir(tmp_path / "app" / "shared" / "config")) == releases
    remembered = json.loads((tmp_path / "app" / "runbook-state.json").read_text())["history"]
    assert [e["release"] for e in remembered] == releases  # the state file forgets what was pruned
    first = deployed[0].record["started"].replace("-", "").replace(":", "") + "-1.0.0"
    pruned = invoke("rollback", "--env", str(env_file), "--to", first)
    assert pruned.code == 2 and f"known: {', '.join(releases)}" in pruned.output, pruned.output
    back = invoke("rollback", "--env", str(env_file))
    assert back.code == 0 and app_env.status()["version"] == "1.1.0"


def test_unfinished_release_left_by_a_crash_is_removed_first(invoke, app_env, build, tmp_path):
    build("1.0.0")
    half = tmp_path / "app" / "releases" / "20200101T000000Z-0.9.0"
    half.mkdir(parents=True)
    (half / ".runbook-unfinished").touch()
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert result.code == 0, result.output
    prepare = next(p for p in result.record["phases"] if p["name"] == "prepare")
    assert "removed unfinished release 20200101T000000Z-0.9.0 on localhost, left by a crashed run" in prepare["evidence"]
    assert not half.exists()


def test_backup_and_watch_each_run_alone_against_the_live_release(invoke, app_env, build, tmp_path):
    build("1.0.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("backup", "--env", str(app_env.env_file))
    assert result.code == 0, result.output
    record = result.record
    backup = record["backup"]
    assert backup["format"] == "custom" and backup["size_bytes"] == os.path.getsize(backup["path"])
    assert set(backup["tables"]) >= {"public.items", "public.users", "public.files", "public.schema_migrations"}
    listing = subprocess.run(["pg_restore", "--list", backup["path"]], capture_output=True, text=True, timeout=60)
    assert "TABLE DATA public items" in listing.stdout
    watched = invoke("watch", "--env", str(app_env.env_file))
    assert watched.code == 0, watched.output
    assert watched.record["baseline"]["error_rate"] == 0.0 and watched.record["bake"]["fired"] is None
    assert len(watched.record["bake"]["samples"]) >= 2


def test_release_whose_error_rate_rises_later_is_rolled_back_by_the_bake_trigger(invoke, app_env, build):
    data = yaml.safe_load(app_env.env_file.read_text())
    data["watch"] |= {"bake_seconds": 6, "error_window_seconds": 1.5}
    app_env.env_file.write_text(yaml.safe_dump(data))
    build("1.0.0")
    build("1.1.0", edit=failing_after_requests)
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1 and "record: " in result.output, result.output
    record = result.record
    assert record["bake"]["fired"]["trigger"] == "error rate"
    assert record["bake"]["fired"]["samples"] and record["rollback"]["reason"].startswith("Watch the release")
    assert record["baseline"]["error_rate"] == 0.0
    assert (result.folder / "bake.svg").read_text().lstrip().startswith("<svg")
    assert app_env.status()["version"] == "1.0.0"

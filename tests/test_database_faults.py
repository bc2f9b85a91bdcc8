"""The database going away in the middle of a deploy (a real PostgreSQL cluster of the test's own,
stopped after the backup): the run ends in the contract, with a record, and is recovered once the
database is back; a backup that fills its disk leaves no partial dump on it."""

import subprocess

import psycopg
import pytest

from runbook import config, local

from . import apps, cli, packages
from .recovery import NOTES, lock_file, rows_kept


@pytest.fixture
def on_own_cluster(tmp_path):
    """The demo app on 1.0.0, its database in a PostgreSQL cluster that only this test uses."""
    port = apps.free_port()
    with apps.deployable(tmp_path, {"database": {"url": None}, "local": {"postgres_port": port}}) as app:
        app.database = f"postgresql://postgres@127.0.0.1:{port}/demo"
        packages.build(tmp_path, "1.0.0")
        packages.build(tmp_path, "1.1.0", {"0003_notes.sql": NOTES})
        first = cli.invoke(tmp_path / "reports-first", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert first.code == 0, first.output
        app.write_items(2)
        yield app


def test_database_stopped_after_the_backup_ends_in_the_contract_and_is_recovered(on_own_cluster, tmp_path):
    app = on_own_cluster
    rows = app.rows()
    reports = tmp_path / "reports"
    running = cli.start_deploy(reports, app.env_file, "1.1.0")
    cli.wait_for_phase(reports, running, "1.1.0", "prepare")
    local.stop_postgres(config.load_environment(str(app.env_file)))
    output, _ = running.communicate(timeout=300)
    assert running.returncode == 3, output
    assert "Traceback" not in output
    assert "A HUMAN IS NEEDED" in output and "database schema: unknown" in output, output
    (folder,) = [p for p in reports.iterdir() if "-deploy-" in p.name]
    assert (folder / "record.json").exists()
    assert lock_file(app).exists()

    status = cli.invoke(reports, "status", "--env", str(app.env_file))
    assert status.code == 2 and "is down: start it with `invoke local.up" in status.output, status.output
    assert "Traceback" not in status.output

    back = cli.invoke(reports, "local.up", "--env", str(app.env_file))
    assert back.code == 0 and "started PostgreSQL" in back.output and "started the app" not in back.output, back.output
    recovered = cli.invoke(reports, "rollback", "--env", str(app.env_file), "--break-lock")
    assert recovered.code == 0, recovered.output
    assert app.status()["version"] == "1.0.0" and app.schema() == "0002" and rows_kept(app, rows)
    assert not lock_file(app).exists()


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: the backup folder of a test environment, too small for its dump."""
    folder = tmp_path / "backups"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, timeout=30)


def test_a_backup_that_fills_the_disk_removes_its_partial_dump(make_env, invoke, full_disk):
    with apps.fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:  # random text: the dump cannot compress it below 64 KiB
            conn.execute("CREATE TABLE bulk AS SELECT i, md5(random()::text) || md5(random()::text) AS junk"
                         " FROM generate_series(1, 20000) AS i")
        env = make_env({"database": {"url": url, "backup_dir": str(full_disk)}})
        result = invoke("backup", "--env", str(env))
    assert result.code == 1, result.output
    assert "pg_dump into" in result.output and "No space left on device" in result.output, result.output
    assert "the partial backup" in result.output and "was removed" in result.output
    assert list(full_disk.iterdir()) == []

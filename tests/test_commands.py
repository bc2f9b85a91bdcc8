"""The commands run on hosts, as argument lists: built without a host, a value never turns into shell
text, and the runner runs them as built (here on `local://`, the machine itself)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runbook import config
from runbook.errors import ActionFailed
from runbook.database import commands as database_commands
from runbook.hosts import commands, runner
from runbook.release import commands as release_commands
from runbook.release import services

HOSTILE = "20261128T090000Z-1.1.0 $(touch pwned) `touch pwned`; touch pwned"
"""A release name no one should use: spaces, command substitution and a separator; it stays one argument."""

LOCAL = config.Host(name="localhost", spec="local://")


def environment(**changes) -> config.Environment:
    return config.Environment(
        name="t", hosts=[LOCAL], app={"name": "demo", "root": "/srv/app"},
        database={"url": "postgresql://db/app", "backup_dir": "/srv/backups"},
        endpoints={"health": "http://h/health", "status": "http://h/api/status"}, **changes,
    )


def sh(argv: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)


def test_a_hostile_release_name_stays_one_argument_and_runs_nothing(tmp_path):
    folder = tmp_path / HOSTILE
    folder.mkdir()
    argv = commands.remove_trees(str(folder), str(tmp_path / "config" / HOSTILE))
    assert argv == ["rm", "-rf", "--", str(folder), str(tmp_path / "config" / HOSTILE)]
    assert runner.run(LOCAL, argv, cwd=str(tmp_path)).rc == 0
    assert not folder.exists() and not (tmp_path / "pwned").exists()


def test_the_generic_builders_are_plain_argument_lists():
    assert commands.make_folders("/a b", "/c", mode="0750") == ["mkdir", "-p", "-m", "0750", "--", "/a b", "/c"]
    assert commands.make_folders("/a") == ["mkdir", "-p", "--", "/a"]
    assert commands.remove_files("/srv/app/current") == ["rm", "-f", "--", "/srv/app/current"]
    assert commands.link("/s/config/r/.env", "/r/.env") == ["ln", "-sfn", "--", "/s/config/r/.env", "/r/.env"]
    assert commands.read_link("/srv/app/current") == ["readlink", "--", "/srv/app/current"]
    assert commands.list_folder("/m") == ["ls", "-1", "--", "/m"]


def test_a_script_is_a_constant_with_its_values_after_it():
    assert commands.shell("echo \"$1\"", "$(x)") == ["sh", "-c", "echo \"$1\"", "sh", "$(x)"]
    assert commands.in_folder("/r", ["ls"]) == ["sh", "-c", commands.IN_FOLDER, "sh", "/r", "ls"]
    assert commands.combined(["ls"]) == ["sh", "-c", commands.COMBINED, "sh", "ls"]


def test_the_switch_is_one_atomic_rename_of_a_new_link_over_current(tmp_path):
    argv = release_commands.switch(str(tmp_path / "current"), f"releases/{HOSTILE}")
    assert argv == ["sh", "-c", release_commands.SWITCH, "sh", str(tmp_path / "current"), f"releases/{HOSTILE}"]
    assert release_commands.SWITCH.count("mv ") == 1 and "mv -Tf" in release_commands.SWITCH
    assert "rm " not in release_commands.SWITCH, "current is never removed before the new one is in place"
    assert sh(release_commands.switch(str(tmp_path / "current"), "releases/old"), tmp_path).returncode == 0
    assert (tmp_path / "current").readlink().as_posix() == "releases/old"
    assert sh(argv, tmp_path).returncode == 0
    assert (tmp_path / "current").readlink().as_posix() == f"releases/{HOSTILE}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"], "no temporary link is left"


def test_unpacking_marks_the_release_unfinished_before_anything_else():
    steps = release_commands.unpack("/r/R", "/s/packages/demo-1.1.0.tar.gz", ".runbook-unfinished", "/s",
                                    ["uploads", "logs"])
    assert steps == [
        ["mkdir", "-p", "--", "/r/R"],
        ["touch", "--", "/r/R/.runbook-unfinished"],
        ["tar", "-xzf", "/s/packages/demo-1.1.0.tar.gz", "-C", "/r/R", "--strip-components=1"],
        ["mkdir", "-p", "--", "/s/uploads", "/s/logs"],
        ["rm", "-rf", "--", "/r/R/uploads", "/r/R/logs"],
        ["ln", "-s", "--", "/s/uploads", "/r/R/uploads"],
        ["ln", "-s", "--", "/s/logs", "/r/R/logs"],
    ]
    assert len(release_commands.unpack("/r/R", "/p.tar.gz", ".m", "/s", [])) == 3


def test_the_release_listing_tells_finished_from_unfinished_and_a_missing_folder_is_empty(tmp_path):
    (tmp_path / HOSTILE).mkdir()
    (tmp_path / "20261129T090000Z-1.2.0").mkdir()
    (tmp_path / "20261129T090000Z-1.2.0" / ".runbook-unfinished").touch()
    (tmp_path / "a-file").touch()
    listed = sh(release_commands.list_releases(str(tmp_path), ".runbook-unfinished"), tmp_path)
    assert sorted(listed.stdout.splitlines()) == [f"release {HOSTILE}", "unfinished 20261129T090000Z-1.2.0"]
    gone = sh(release_commands.list_releases(str(tmp_path / "none"), ".runbook-unfinished"), tmp_path)
    assert (gone.returncode, gone.stdout) == (0, "")


def test_the_manifest_check_runs_in_the_release_folder_given_to_the_runner(tmp_path):
    assert release_commands.check_manifest("MANIFEST.sha256") == ["sha256sum", "--strict", "--quiet", "-c",
                                                                  "MANIFEST.sha256"]
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "MANIFEST.sha256").write_text(sh(["sha256sum", "app.py"], tmp_path).stdout)
    assert runner.run(LOCAL, release_commands.check_manifest("MANIFEST.sha256"), cwd=str(tmp_path)).rc == 0
    (tmp_path / "app.py").write_text("print(2)\n")
    assert runner.run(LOCAL, release_commands.check_manifest("MANIFEST.sha256"), cwd=str(tmp_path)).rc != 0


def test_the_file_states_name_each_file_with_its_inode_size_and_change_time_through_the_runner(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a b.py").write_text("x = 1\n")
    listed = runner.must(LOCAL, release_commands.file_states(), cwd=str(tmp_path), what="listing").splitlines()
    found = (tmp_path / "lib" / "a b.py").stat()
    (line,) = listed
    inode, size, changed, name = line.split(" ", 3)
    assert (int(inode), int(size), name) == (found.st_ino, 6, "lib/a b.py")
    assert abs(float(changed) - found.st_ctime) < 1e-3


def test_package_cleanup_keeps_only_the_named_package(tmp_path):
    argv = release_commands.remove_old_packages(str(tmp_path), "demo-1.1.0.tar.gz")
    assert argv == ["find", str(tmp_path), "-maxdepth", "1", "-type", "f", "!", "-name", "demo-1.1.0.tar.gz",
                    "-delete"]
    for name in ("demo-1.0.0.tar.gz", "demo-1.1.0.tar.gz"):
        (tmp_path / name).touch()
    assert sh(argv, tmp_path).returncode == 0
    assert [p.name for p in tmp_path.iterdir()] == ["demo-1.1.0.tar.gz"]


def test_installed_versions_are_asked_of_the_hosts_python():
    argv = release_commands.installed_versions(sys.executable, ["pytest", "no-such-distribution"])
    assert argv[:3] == [sys.executable, "-c", release_commands.INSTALLED] and argv[3:] == ["pytest",
                                                                                           "no-such-distribution"]
    found = json.loads(sh(argv, None).stdout)
    assert found["pytest"] and found["no-such-distribution"] is None


def test_the_runner_quotes_every_argument_and_combines_output_in_order(tmp_path):
    said = runner.must(LOCAL, ["printf", "%s\n", "a b", HOSTILE], cwd=str(tmp_path), what="printing")
    assert said.splitlines() == ["a b", HOSTILE] and not (tmp_path / "pwned").exists()
    both = runner.must(LOCAL, ["sh", "-c", "echo one; echo two >&2; echo three"], combined=True, what="talking")
    assert both.splitlines() == ["one", "two", "three"]
    assert runner.must(LOCAL, ["pwd"], cwd=str(tmp_path), what="pwd").strip() == str(tmp_path)
    assert runner.must(LOCAL, ["pwd"], cwd=str(tmp_path), combined=True, what="pwd").strip() == str(tmp_path)


def test_a_failing_command_names_the_host_what_and_why(tmp_path):
    with pytest.raises(ActionFailed, match=r"^host localhost: listing \S+ failed: .*No such file"):
        runner.must(LOCAL, ["ls", "--", str(tmp_path / "none")], what=f"listing {tmp_path / 'none'}")
    with pytest.raises(ActionFailed, match=r"^host localhost: running in a missing folder failed: .*"):
        runner.must(LOCAL, ["true"], cwd=str(tmp_path / "none"), what="running in a missing folder")


def test_database_clients_never_carry_the_password():
    dump = database_commands.dump("pg_dump", "/b/R.dump", 1, "host=db dbname=app user=demo", "/b/.pgpass-x")
    assert dump == ["env", "-u", "PGPASSWORD", "PGPASSFILE=/b/.pgpass-x", "pg_dump", "--format=custom",
                    "--exclude-schema=runbook_snapshot", "--file=/b/R.dump", "--dbname=host=db dbname=app user=demo"]
    assert database_commands.dump("pg_dump", "/b/R.dir", 4, "dbname=app") == [
        "pg_dump", "--format=directory", "--jobs=4", "--exclude-schema=runbook_snapshot",
        "--file=/b/R.dir", "--dbname=dbname=app"]
    assert database_commands.restore("pg_restore", "/b/R.dump", False, 4, "dbname=app") == [
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "/b/R.dump",
        "--dbname=dbname=app"]
    assert database_commands.restore("pg_restore", "/b/R.dir", True, 4, "dbname=app")[4] == "--jobs=4"
    assert database_commands.table_of_contents("pg_restore", "/b/R.dump") == ["pg_restore", "--list", "/b/R.dump"]
    assert database_commands.measure("/b/R.dump") == ["sh", "-c", database_commands.MEASURE, "sh", "/b/R.dump"]


def test_the_backup_measure_reads_a_file_and_a_folder(tmp_path):
    (tmp_path / "R.dump").write_bytes(b"dump")
    size, digest = sh(database_commands.measure(str(tmp_path / "R.dump")), tmp_path).stdout.split()
    assert size == "4" and digest == sh(["sha256sum", "R.dump"], tmp_path).stdout.split()[0]
    (tmp_path / "R.dir").mkdir()
    (tmp_path / "R.dir" / "toc.dat").write_bytes(b"toc")
    assert len(sh(database_commands.measure(str(tmp_path / "R.dir")), tmp_path).stdout.split()) == 2


@pytest.mark.parametrize("action, words", [
    ("start", ["start"]), ("stop", ["stop"]), ("reload", ["signal", "HUP"]),
])
def test_supervisord_commands_read_the_configured_supervisorctl(action, words):
    env = environment(services=[{"name": "web", "manager": "supervisord"}],
                      supervisor={"config": "/etc/supervisor/supervisord.conf", "ctl": "/usr/bin/supervisorctl"})
    chosen = services.manager(env, env.services[0])
    assert type(chosen) is services.Supervisord
    base = ["/usr/bin/supervisorctl", "-c", "/etc/supervisor/supervisord.conf"]
    assert chosen.command(action) == [*base, *words, "web"]
    assert chosen.pid_command() == services.pid_command(env, env.services[0]) == [*base, "pid", "web"]


def test_supervisord_is_read_for_what_it_says_as_well_as_its_exit_code():
    env = environment(services=[{"name": "web", "manager": "supervisord"}], supervisor={"config": "/etc/s.conf"})
    chosen = services.manager(env, env.services[0])
    assert chosen.already("stop", "web: ERROR (not running)")
    assert chosen.already("start", "web: ERROR (already started)")
    assert not chosen.already("reload", "web: ERROR (not running)")
    assert chosen.refused(0, "web: ERROR (no such process)") and not chosen.refused(0, "web: started")


def test_the_local_environment_uses_its_own_supervisorctl_and_config(tmp_path):
    env = environment(services=[{"name": "web", "manager": "supervisord"}], local={"state_dir": str(tmp_path)})
    chosen = services.manager(env, env.services[0])
    assert chosen.ctl == str(Path(sys.executable).parent / "supervisorctl")
    assert chosen.conf.startswith(str(tmp_path))


def test_systemd_commands_are_systemctls():
    env = environment(services=[{"name": "web", "manager": "systemd"}])
    chosen = services.manager(env, env.services[0])
    assert type(chosen) is services.Systemd
    assert [chosen.command(a) for a in ("start", "stop", "reload")] == [
        ["systemctl", "start", "web"], ["systemctl", "stop", "web"], ["systemctl", "reload", "web"]]
    assert chosen.pid_command() == ["systemctl", "show", "-p", "MainPID", "--value", "web"]
    assert not chosen.already("stop", "") and chosen.refused(1, "") and not chosen.refused(0, "")


def test_a_command_under_a_deadline_is_run_by_gnu_timeout_killed_soon_after():
    assert commands.bounded(30, ["pg_dump", "--file=/b/x.dump"]) == [
        "timeout", "--kill-after=5", "30s", "pg_dump", "--file=/b/x.dump"]
    assert commands.without_env(["env", "-u", "PGPASSWORD", "PGPASSFILE=/p", "pg_dump", "-x"]) == ["pg_dump", "-x"]
    assert commands.without_env(["python3", "bin/migrate"]) == ["python3", "bin/migrate"]
    assert database_commands.session_limits(["python3", "bin/migrate", "up"], 60, 5) == [
        "env", "PGOPTIONS=-c statement_timeout=60s -c lock_timeout=5s", "python3", "bin/migrate", "up"]
    assert "--lock-wait-timeout=30s" in database_commands.dump("pg_dump", "/b/R.dump", 1, "dbname=app", lock_wait=30)


def test_a_text_searched_in_a_file_stays_one_pattern_even_when_it_looks_like_an_option(tmp_path):
    log = tmp_path / HOSTILE
    log.write_text('{"request_id": "-v"}\n{"request_id": "other"}\n')
    assert commands.lines_containing("-v", str(log)) == ["grep", "-F", "-e", "-v", "--", str(log)]
    assert runner.run(LOCAL, commands.lines_containing("-v", str(log))).stdout == '{"request_id": "-v"}\n'
    assert runner.run(LOCAL, commands.lines_containing("-v", str(tmp_path / "missing"))).rc == 2

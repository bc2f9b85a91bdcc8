"""Every wait has a deadline: real hangs (a command that sleeps on the host, a migration that sleeps in the
database, a webhook that trickles, a table lock another session holds) end in bounded time, named."""

import os
import re
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from runbook import ROOT, config
from runbook.config import Deadlines
from runbook.config.deadlines import PHASES
from runbook.database import queries, rows
from runbook.errors import DeadlineExceeded
from runbook.governance import notify
from runbook.hosts import connection, deadline, runner

from . import apps, packages


def _processes_in(folder: Path) -> list[str]:
    """The command lines of the processes whose working folder is inside `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError):
            continue
    return found


def _settled(check, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_host_command_that_hangs_is_stopped_on_the_host_with_its_children(tmp_path):
    host = config.Host(name="localhost", spec="local://", deadlines=Deadlines(command=2))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as failed:
        runner.must(host, ["sh", "-c", "sleep 300 & sleep 300; wait"], cwd=str(tmp_path), what="hanging")
    assert time.monotonic() - started < 60
    assert str(failed.value).startswith("host localhost: `sh -c 'sleep 300 & sleep 300; wait'` did not finish "
                                        "within 2 s (deadline command)"), failed.value
    assert _settled(lambda: not _processes_in(tmp_path)), _processes_in(tmp_path)


def test_a_command_testinfra_runs_for_its_own_modules_has_the_phases_deadline_too(tmp_path):
    host = config.Host(name="localhost", spec="local://", deadlines=Deadlines(command=2))
    started = time.monotonic()
    with deadline.in_phase("stop"):
        result = connection.connect(host).run(f"cd {tmp_path} && sleep 300")
    assert result.rc in (124, 137) and time.monotonic() - started < 60
    assert _settled(lambda: not _processes_in(tmp_path)), _processes_in(tmp_path)


def test_the_deadline_is_the_kinds_else_the_phases_else_commands():
    limits = Deadlines(command=7, services=9, phases={"stop": 5})
    assert limits.for_command("services", "stop") == ("services", 9)
    assert limits.for_command(None, "stop-2") == ("phases.stop", 5)
    assert limits.for_command(None, "switch") == ("command", 7)
    assert limits.for_checks("verification") == ("checks", 1800)
    host = config.Host(name="h", spec="local://", deadlines=Deadlines(phases={"stop": 1}))
    with deadline.in_phase("stop"), pytest.raises(DeadlineExceeded, match=r"within 1 s \(deadline phases.stop\)"):
        connection.each([host], lambda h: runner.run(h, ["sleep", "300"]))


def test_every_phase_of_the_sequences_can_have_a_deadline():
    source = (ROOT / "runbook" / "engine" / "sequences.py").read_text()
    assert set(re.findall(r'Phase\("([a-z-]+)"', source)) == PHASES


@pytest.mark.parametrize("change, named", [
    ({"comand": 10}, "deadlines.comand (line {line}): unknown key"),
    ({"backup": 0}, "deadlines.backup (line {line}): Input should be greater than or equal to 1"),
    ({"phases": {"migrat": 10}}, "deadlines.phases (line {line}): no phase is named 'migrat'"),
])
def test_a_wrong_deadline_is_refused_naming_it(tmp_path, change, named):
    path = tmp_path / "test.yaml"
    data = apps.merge(apps.environment(tmp_path, apps.MACHINE_PG + "/x", tmp_path / "state"), {"deadlines": change})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    key, lines = next(iter(change)), path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if i > lines.index("deadlines:") and text.strip().startswith(key))
    with pytest.raises(config.load.ConfigError) as error:
        config.load_environment(str(path))
    assert error.value.exit_code == 2
    assert named.format(line=line) in str(error.value), error.value


def test_a_wrong_deadline_ends_preflight_with_exit_2(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env({"deadlines": {"migrate": -1}})))
    assert result.code == 2 and "deadlines.migrate" in result.output and "Traceback" not in result.output, result.output


def _trickling_server() -> tuple[str, socket.socket]:
    """A server that answers every request one byte a second (its answer would take over a minute)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def answer(client: socket.socket) -> None:
        with client:
            client.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40:
                    client.send(bytes([byte]))
                    time.sleep(1)
            except OSError:  # the client gave up
                pass

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=answer, args=(client,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/hook", server


def test_a_webhook_that_trickles_is_given_up_at_its_timeout():
    url, server = _trickling_server()
    with server:
        hook = config.Notification(name="hook", kind="webhook", url=url, timeout=2, attempts=2)
        message = notify.Message("started", "test", "1.0.0", "run-1", "dana", "deploying 1.0.0")
        started = time.monotonic()
        delivery = notify.deliver(hook, message)
    assert time.monotonic() - started < 30
    assert not delivery.ok and delivery.attempts == 2, delivery
    assert "no answer within 2 s" in delivery.error, delivery


@pytest.fixture
def locked_table(database_url):
    """A table another session holds locked (ACCESS EXCLUSIVE) until the test ends."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS locked_rows (id int)")
    with psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE locked_rows IN ACCESS EXCLUSIVE MODE")
        yield "public.locked_rows"
        holder.rollback()


def test_database_sessions_give_up_a_lock_and_a_statement_at_their_deadlines(tmp_path, database_url, locked_table):
    path = tmp_path / "test.yaml"
    data = apps.merge(apps.environment(tmp_path, database_url, tmp_path / "state"),
                      {"deadlines": {"statement": 3, "lock": 2}})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    env = config.load_environment(str(path))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r": a statement waited 2 s for a lock another session holds "
                                               r"\(deadline lock\)"):
        rows.snapshot(env, [locked_table])
    with pytest.raises(DeadlineExceeded, match=r": a statement did not finish within 3 s \(deadline statement\)"):
        queries.query_column(env, "SELECT pg_sleep(300)")
    assert time.monotonic() - started < 60


def _sleeping(database: str) -> int:
    with psycopg.connect(database, autocommit=True, connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%' "
                            "AND pid <> pg_backend_pid()").fetchone()[0]


def test_a_migration_that_hangs_is_stopped_and_the_deploy_rolled_back(app_env, build, invoke):
    app = app_env
    apps.change_env(app.env_file, {"deadlines": {"migrate": 3}}, apps.UNREHEARSED)
    build("1.0.0")
    build("1.1.0", {"0003_slow.sql": packages.SLOW_MIGRATION.format(seconds=600)})
    assert (first := invoke("deploy", "--env", str(app.env_file), "--version", "1.0.0")).code == 0, first.output

    started = time.monotonic()
    result = invoke("deploy", "--env", str(app.env_file), "--version", "1.1.0")
    assert time.monotonic() - started < 300  # the migration alone would have slept 600 s
    assert result.code == 1, result.output
    assert re.search(r"host localhost: `\S+ bin/migrate up` did not finish within 3 s \(deadline migrate\)",
                     result.output), result.output
    assert app.status()["version"] == "1.0.0" and app.schema() == "0002"
    assert _settled(lambda: _sleeping(app.database) == 0), "pg_sleep still runs in the database"
    assert not [p for p in _processes_in(app.folder / "app") if "bin/migrate" in p]

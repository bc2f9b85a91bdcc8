"""Step 3's restore drill on the machine's PostgreSQL: every backup is restored into a scratch database and
compared with the database as the dump saw it; a corrupted dump fails, and no scratch database is left."""

import os
import secrets
import signal
import threading
import time

import psycopg
import pytest
from psycopg import sql

from runbook import config
from runbook.database import backup, drill, queries, rehearsal
from runbook.database.migrations import parse
from runbook.errors import ActionFailed
from runbook.config.app import Drill

from . import cli
from .apps import MACHINE_PG


def run_id() -> str:
    return f"20261202T053000Z-test-backup-{secrets.token_hex(3)}"


def scratch_databases(database_url: str) -> list[str]:
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(f"{MACHINE_PG}/postgres", connect_timeout=10) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                           [drill.prefix(name)])]


@pytest.fixture
def shop(make_env, database_url):
    """An environment whose database has a `customers` table of 3000 rows and an `orders` table that refers
    to it; the environment, loaded."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS orders, customers")
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, joined timestamptz DEFAULT now())")
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, total numeric)")
        conn.execute("INSERT INTO customers (name) SELECT md5(i::text) || repeat('x', 200) FROM generate_series(1, 3000) i")
        conn.execute("INSERT INTO orders (customer, total) SELECT i, i * 1.5 FROM generate_series(1, 3000) i")

    def load(changes: dict | None = None) -> config.Environment:
        return config.load_environment(str(make_env(changes)))

    return load


def test_a_good_backup_passes_its_drill_with_equal_counts_and_checksums_and_leaves_no_scratch_database(
        shop, database_url):
    env = shop()
    taken = backup.take(env, "good", run_id())
    compared = taken.drill.compared
    assert compared["public.customers"].rows == 3000 and compared["public.orders"].rows == 3000
    with psycopg.connect(database_url) as conn:
        now = drill.measure(conn, ["public.customers"])["public.customers"]
    assert compared["public.customers"] == now and now.checksum != 0
    assert taken.drill.depth == "full" and taken.drill.tables == len(taken.tables)
    assert taken.lsn and "/" in taken.lsn
    assert scratch_databases(database_url) == []


def test_a_table_with_a_column_of_no_hash_function_is_drilled_and_a_changed_row_changes_its_checksum(
        shop, database_url):
    env = shop()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events")
        conn.execute("CREATE TABLE events (id int, body json, at point)")
        conn.execute("INSERT INTO events SELECT i, json_build_object('n', i), point(i, i) FROM generate_series(1, 500) i")
    tables = ["public.events", "public.customers"]
    taken = backup.take(env, "unhashable", run_id())
    assert taken.drill.compared["public.events"].rows == 500
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = drill.measure(conn, tables)
        conn.execute("UPDATE events SET body = '{\"n\": -1}' WHERE id = 7")
        conn.execute("UPDATE customers SET name = name || '!' WHERE id = 7")
        after = drill.measure(conn, tables)
        conn.execute("DROP TABLE events")
    assert {t: taken.drill.compared[t] for t in tables} == before
    assert all(after[t].rows == before[t].rows and after[t].checksum != before[t].checksum for t in tables)
    assert scratch_databases(database_url) == []


@pytest.mark.parametrize("damage", ["truncated", "bytes flipped"])
def test_a_dump_corrupted_after_it_is_written_fails_the_drill_and_leaves_no_scratch_database(
        shop, database_url, damage):
    env = shop()
    taken = backup.take(env, f"corrupt-{damage.replace(' ', '-')}", run_id())
    size = os.path.getsize(taken.path)
    with open(taken.path, "r+b") as dump:
        if damage == "truncated":
            dump.truncate(size // 2)
        else:  # inside the last table's compressed data, at the end of the file
            dump.seek(size - 200)
            spot = dump.read(64)
            dump.seek(size - 200)
            dump.write(bytes(b ^ 0xFF for b in spot))
    with drill.source(env) as seen:
        pass
    with pytest.raises(ActionFailed) as failed:
        drill.run(env, taken.path, False, seen, run_id())
    assert "restore drill of" in str(failed.value) and "was dropped" in str(failed.value)
    assert scratch_databases(database_url) == []


def test_rows_written_during_the_dump_do_not_fail_the_drill(shop, database_url):
    env = shop()
    stop, written = threading.Event(), []

    def write() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO customers (name) VALUES ('during the dump')")
                written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 20:  # the writer is writing when the snapshot is taken
            stop.wait(0.01)
        taken = backup.take(env, "concurrent", run_id())
        seen = len(written)
        while len(written) < seen + 20:  # and still after the drill
            stop.wait(0.01)
    finally:
        stop.set()
        writer.join()
    with psycopg.connect(database_url) as conn:
        final = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    dumped = taken.drill.compared["public.customers"].rows
    assert 3000 + 20 <= dumped < final


def test_a_schema_drill_restores_the_protected_tables_data_alone(shop, database_url):
    env = shop({"rollback": {"protected_tables": ["orders"]}, "database": {"drill": {"depth": "schema"}}})
    taken = backup.take(env, "schema", run_id())
    assert taken.drill.depth == "schema" and set(taken.drill.compared) == {"public.orders"}
    assert taken.drill.compared["public.orders"].rows == 3000
    assert scratch_databases(database_url) == []


def test_a_schema_drill_is_full_below_its_size_and_full_refuses_a_size():
    assert Drill(depth="schema", full_below_mb=100).depth_for(50 * 2**20) == "full"
    assert Drill(depth="schema", full_below_mb=100).depth_for(200 * 2**20) == "schema"
    with pytest.raises(ValueError, match="applies only with `depth: schema`"):
        Drill(depth="full", full_below_mb=100)


def test_a_scratch_database_a_killed_drill_left_is_dropped_by_the_next(shop, database_url):
    env = shop()
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    leftover = drill.scratch_name(name, run_id())
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(leftover)))
    taken = backup.take(env, "after-a-kill", run_id())
    assert taken.drill.leftovers_dropped == [leftover]
    assert scratch_databases(database_url) == []


def test_preflight_names_a_database_login_that_may_not_create_the_drills_scratch_database(shop, database_url):
    role = f"runbook_nocreatedb_{secrets.token_hex(3)}"
    with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    try:
        assert queries.may_create_databases(shop()).ok
        limited = shop({"database": {"url": database_url.replace("postgres@", f"{role}@")}})
        finding = queries.may_create_databases(limited)
        assert not finding.ok and f"role {role} may not create databases" in finding.detail
    finally:
        with psycopg.connect(f"{MACHINE_PG}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_sigterm_during_the_drill_fails_the_backup_and_drops_the_scratch_database(make_env, database_url, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bulk")
        conn.execute("CREATE TABLE bulk (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO bulk (body) SELECT repeat(md5(i::text), 8) FROM generate_series(1, 150000) i")
    path = make_env()
    running = cli.start_task(tmp_path / "reports", "backup", "--env", str(path))
    deadline = time.monotonic() + 120
    while not scratch_databases(database_url):
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()[0]
        time.sleep(0.005)
    running.send_signal(signal.SIGTERM)
    output, _ = running.communicate(timeout=120)
    assert running.returncode == 1, output
    assert "backup: failed (Interrupted: interrupted by SIGTERM)" in output, output
    assert scratch_databases(database_url) == []


def test_sigterm_while_the_figures_wait_for_a_lock_cancels_them_instead_of_waiting_out_the_lock_deadline(
        make_env, database_url, tmp_path):
    """The figures run on the server while pg_dump dumps; a run stopped meanwhile must not wait for them."""
    figures = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%hash_record_extended%' AND pid <> pg_backend_pid()"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS held (id int)")
    path = make_env({"deadlines": {"lock": 300}})
    with psycopg.connect(database_url) as holder, psycopg.connect(database_url, autocommit=True) as watcher:
        holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        running = cli.start_task(tmp_path / "reports", "backup", "--env", str(path))
        deadline = time.monotonic() + 120
        while not watcher.execute(figures + " AND wait_event_type = 'Lock'").fetchone()[0]:
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()[0]
            time.sleep(0.05)
        running.send_signal(signal.SIGTERM)
        output, _ = running.communicate(timeout=60)  # far below the lock deadline of 300 s it would wait out
        assert running.returncode == 1, output
        assert "backup: failed (Interrupted: interrupted by SIGTERM)" in output, output
        assert watcher.execute(figures).fetchone()[0] == 0
        holder.rollback()


def test_a_rehearsal_runs_a_migration_up_down_and_up_on_the_copy_leaving_the_database_alone(shop, database_url):
    env = shop({"database": {"drill": {"rehearse": True}}})
    good = parse("0002_vip.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                 "-- migrate:down\nALTER TABLE customers DROP COLUMN vip;\n")
    taken = backup.take(env, "rehearsed", run_id(), [good])
    assert [r.migration for r in taken.drill.rehearsal] == ["0002_vip"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'vip'").fetchone() == (0,)
    assert scratch_databases(database_url) == []


def test_a_down_part_that_leaves_a_column_behind_fails_the_rehearsal_showing_the_difference(shop, database_url):
    env = shop({"database": {"drill": {"rehearse": True}}})
    leaky = parse("0002_perks.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                    "CREATE TABLE perks (id int);\n-- migrate:down\nDROP TABLE perks;\n")
    with pytest.raises(ActionFailed) as failed:
        backup.take(env, "leaky", run_id(), [leaky])
    message = str(failed.value)
    assert "rehearsal of 0002_perks: its down part does not return the schema" in message
    assert "+    vip boolean" in message and "the scratch database" in message and "was dropped" in message
    assert scratch_databases(database_url) == []


def test_a_rehearsal_records_each_tables_strongest_lock_and_the_rows_the_up_part_touches(shop, database_url):
    env = shop({"database": {"drill": {"rehearse": True}}})
    vip = parse("0002_vip.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                "UPDATE customers SET vip = true WHERE id <= 40;\nSELECT count(*) FROM orders;\n"
                                "-- migrate:down\nALTER TABLE customers DROP COLUMN vip;\n")
    taken = backup.take(env, "locks", run_id(), [vip])
    [rehearsed] = taken.drill.rehearsal
    assert rehearsed.locks == {"public.customers": "AccessExclusiveLock", "public.orders": "AccessShareLock"}
    assert rehearsed.rows == {"public.customers": 40}
    assert rehearsed.sizes["public.customers"] > 0
    assert "its up part locks public.customers in AccessExclusiveLock, public.orders in AccessShareLock and " \
           "touches 40 rows (public.customers: 40)" in taken.drill.lines()[-1]


def test_rolling_refuses_a_migration_taking_access_exclusive_on_a_table_above_the_size_allowed(shop, database_url):
    env = shop({"rollout": {"strategy": "rolling"},
                "database": {"drill": {"rehearse": True, "exclusive_lock_max_mb": 0}}})
    vip = parse("0002_vip.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                "-- migrate:down\nALTER TABLE customers DROP COLUMN vip;\n")
    with pytest.raises(ActionFailed) as failed:
        backup.take(env, "rolling", run_id(), [vip])
    message = str(failed.value)
    assert "rehearsal of 0002_vip: under rollout.strategy rolling it may not take AccessExclusiveLock on " \
           "public.customers (" in message and "MB), above database.drill.exclusive_lock_max_mb (0 MB)" in message
    assert scratch_databases(database_url) == []


def test_rolling_allows_a_migration_taking_weaker_locks_on_the_same_table(shop, database_url):
    env = shop({"rollout": {"strategy": "rolling"},
                "database": {"drill": {"rehearse": True, "exclusive_lock_max_mb": 0}}})
    index = parse("0002_names.sql", "-- migrate:up\nCREATE INDEX customers_name ON customers (name);\n"
                                    "-- migrate:down\nDROP INDEX customers_name;\n")
    taken = backup.take(env, "rolling", run_id(), [index])
    assert taken.drill.rehearsal[0].locks == {"public.customers": "ShareLock"}


def test_a_migration_blocked_by_another_sessions_lock_on_the_copy_fails_within_lock_timeout_naming_it(
        shop, database_url, monkeypatch):
    """The blocker opens on the copy once the drill has restored and compared it, just before the first
    migration's up part: a session of the copy's own, in a transaction holding ACCESS SHARE on `customers`."""
    env = shop({"deadlines": {"lock": 1}, "database": {"drill": {"rehearse": True}}})
    held: list[tuple[psycopg.Connection, int]] = []
    schema = rehearsal.schema

    def open_blocker_then_read_schema(env, database):
        if not held:
            blocker = psycopg.connect(f"{MACHINE_PG}/{database}", connect_timeout=10)
            blocker.execute("LOCK TABLE customers IN ACCESS SHARE MODE")
            held.append((blocker, blocker.info.backend_pid))
        return schema(env, database)

    monkeypatch.setattr(rehearsal, "schema", open_blocker_then_read_schema)
    vip = parse("0002_vip.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                "-- migrate:down\nALTER TABLE customers DROP COLUMN vip;\n")
    try:
        with pytest.raises(ActionFailed) as failed:
            backup.take(env, "blocked", run_id(), [vip])
    finally:
        for blocker, _ in held:
            blocker.close()
    message = str(failed.value)
    assert "rehearsal of 0002_vip: its up part waited longer than lock_timeout (1 s) for a lock another session " \
           f"holds on the copy: AccessShareLock on public.customers held by session {held[0][1]} " \
           "(idle in transaction" in message, message
    assert scratch_databases(database_url) == []

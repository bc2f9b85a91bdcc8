"""The protected tables' snapshot: constant in size whatever the rows, computed by the database, and a
missing or changed row is still found."""

import json
import secrets

import psycopg
import pytest
import yaml
from psycopg import sql

from runbook import config
from runbook.database import drill, rows
from runbook.errors import ActionFailed
from tests import apps


def _env(tmp_path, database_url):
    path = tmp_path / "test.yaml"
    data = apps.merge(apps.environment(tmp_path, database_url, tmp_path / "state"),
                      {"rollback": {"protected_tables": ["public.rows_small", "public.rows_large", "public.rows_none"]}})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return config.load_environment(str(path))


def _fill(database_url: str, table: str, count: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL)")
        conn.execute(f"INSERT INTO {table} SELECT i, 'name ' || i FROM generate_series(1, %s) i", [count])


def test_a_snapshot_is_as_long_for_50k_rows_as_for_1k(tmp_path, database_url):
    _fill(database_url, "rows_small", 1_000)
    _fill(database_url, "rows_large", 50_000)
    taken = rows.snapshot(_env(tmp_path, database_url), ["public.rows_small", "public.rows_large"])
    assert (taken["public.rows_small"]["rows"], taken["public.rows_large"]["rows"]) == (1_000, 50_000)
    small, large = (json.dumps({**taken[t], "rows": 0}) for t in ("public.rows_small", "public.rows_large"))
    assert len(small) == len(large), "apart from the count's digits, the entries are as long"
    assert small != large, "the checksums differ"


def test_a_changed_or_missing_row_is_found_and_new_rows_are_allowed(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    _fill(database_url, "rows_small", 1_000)
    _fill(database_url, "rows_large", 50_000)
    before = rows.snapshot(env, ["public.rows_small", "public.rows_large", "public.rows_none"])
    assert before["public.rows_none"]["rows"] is None
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO rows_small VALUES (5000, 'new')")
        conn.execute("UPDATE rows_large SET name = 'changed' WHERE id = 777")
        conn.execute("DELETE FROM rows_large WHERE id = 778")
    found = {f.subject: f for f in rows.unchanged(env, before)}
    assert found["table public.rows_small"].ok, found["table public.rows_small"].detail
    assert "all 1000 rows from before the deploy are there" in found["table public.rows_small"].detail
    assert not found["table public.rows_large"].ok
    assert found["table public.rows_large"].detail.startswith("2 of its 50000 rows from before the deploy")
    assert found["table public.rows_none"].ok


def test_the_row_digests_stay_on_the_server_out_of_the_drill_and_the_next_snapshot_drops_them(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    _fill(database_url, "rows_small", 10)
    first = rows.snapshot(env, ["public.rows_small"])["public.rows_small"]["kept"]
    second = rows.snapshot(env, ["public.rows_small"])["public.rows_small"]["kept"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        kept = [r[0] for r in conn.execute("SELECT schemaname || '.' || tablename FROM pg_tables "
                                           "WHERE schemaname = 'runbook_snapshot'")]
        held = conn.execute(f"SELECT count(*) FROM {second}").fetchone()[0]
        listed = [r[0] for r in conn.execute(drill.TABLES)]
    assert kept == [second] and first != second
    assert held == 10
    assert not [t for t in listed if t.startswith("runbook_snapshot.")]


def test_a_finished_run_drops_the_digests_its_snapshot_kept(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    _fill(database_url, "rows_small", 10)
    taken = rows.snapshot(env, ["public.rows_small"])
    kept = taken["public.rows_small"]["kept"]
    assert rows.drop(env, taken) == [f"dropped the protected rows' digests {kept}"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass(%s)", [kept]).fetchone()[0] is None


def test_two_equal_rows_changed_alike_are_found_though_their_hashes_cancel_in_the_xor(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS rows_small")
        conn.execute("CREATE TABLE rows_small (name text)")
        conn.execute("INSERT INTO rows_small VALUES ('same'), ('same'), ('other')")
    before = rows.snapshot(env, ["public.rows_small"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE rows_small SET name = 'changed' WHERE name = 'same'")
    found = rows.unchanged(env, before)
    assert [(f.ok, f.detail) for f in found] == [
        (False, "2 of its 3 rows from before the deploy are missing or changed")]


def test_a_login_that_may_not_create_the_digests_schema_is_named(tmp_path, database_url):
    role = f"runbook_noschema_{secrets.token_hex(3)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute("DROP SCHEMA IF EXISTS runbook_snapshot CASCADE")
    try:
        limited = _env(tmp_path, database_url.replace("postgres@", f"{role}@"))
        with pytest.raises(ActionFailed, match=r"may not create the schema runbook_snapshot"):
            rows.snapshot(limited, ["public.rows_small"])
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

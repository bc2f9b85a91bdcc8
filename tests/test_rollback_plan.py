"""The rollback planner on the demo app, deployed for real: it chooses code only, down migrations or the
backup, states what that costs the data before acting, and `rollback --plan` says so without changing a thing."""

import json

import psycopg
import pytest

from runbook import config
from runbook.database import backup
from runbook.engine import planner

from . import apps

ADD_NOTE = "-- migrate:up\nALTER TABLE items ADD COLUMN note text;\n-- migrate:down\nALTER TABLE items DROP COLUMN note;\n"
NOTES_TABLE = ("-- migrate:up\nCREATE TABLE notes (id serial PRIMARY KEY, body text);\n"
               "-- migrate:down\nDROP TABLE notes;\n")


PATIENT = {"watch": {"interval_seconds": 2, "timeout": 1.8, "baseline_seconds": 2, "bake_seconds": 4,
                     "error_window_seconds": 2, "latency_window_seconds": 2, "latency_floor_seconds": 1.8,
                     "min_requests": 2}}
"""Bake settings whose requests may take 1.8 s: these tests are about the database, not about a busy machine."""


@pytest.fixture
def app_env(tmp_path):
    with apps.deployable(tmp_path, PATIENT) as app:
        yield app


def deployed(invoke, app, *versions: str) -> None:
    for version in versions:
        result = invoke("deploy", "--env", str(app.env_file), "--version", version)
        assert result.code == 0, result.output


def items_as_stored(app) -> list[tuple]:
    """Every item with its row version (xmin): a row that is updated or rewritten gets a new one."""
    with psycopg.connect(app.database, connect_timeout=5) as conn:
        return conn.execute("SELECT xmin::text, id, name FROM items ORDER BY id").fetchall()


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def columns(app, table: str) -> list[str]:
    with psycopg.connect(app.database, connect_timeout=5) as conn:
        return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                                           "ORDER BY ordinal_position", [table])]


def test_an_additive_migration_rolls_back_code_only_with_the_column_kept_and_no_row_touched(app_env, build, invoke):
    build("1.0.0", files={"RUNS_ON_SCHEMA": "0002..\n"})
    build("1.1.0", {"0003_item_note.sql": ADD_NOTE})
    deployed(invoke, app_env, "1.0.0")
    app_env.write_items(3)
    deployed(invoke, app_env, "1.1.0")
    before = items_as_stored(app_env)

    plan = invoke("rollback", "--env", str(app_env.env_file), "--plan")
    assert plan.code == 0, plan.output
    assert "database rollback: code only" in plan.output and "RUNS_ON_SCHEMA in its package: 0002.." in plan.output
    assert "nothing was changed (--plan)" in plan.output and app_env.status()["version"] == "1.1.0"

    result = invoke("rollback", "--env", str(app_env.env_file))
    assert result.code == 0, result.output
    assert result.record["rollback_plan"]["path"] == "code only" and result.record["rollback"]["schema"] == "0003"
    assert app_env.status() == {"app": "demo", "version": "1.0.0", "schema_version": "0003"}
    assert "note" in columns(app_env, "items")
    assert items_as_stored(app_env)[:len(before)] == before


def test_a_destructive_migrations_plan_names_the_table_and_its_row_count(app_env, build, invoke):
    build("1.0.0")
    build("1.1.0", {"0003_notes.sql": NOTES_TABLE})
    deployed(invoke, app_env, "1.0.0", "1.1.0")
    with psycopg.connect(app_env.database, autocommit=True) as conn:
        conn.execute("INSERT INTO notes (body) SELECT 'written since the deploy' FROM generate_series(1, 7)")

    plan = invoke("rollback", "--env", str(app_env.env_file), "--plan")
    assert plan.code == 0, plan.output
    assert "database rollback: down migrations" in plan.output and "1.0.0 does not run on schema 0003" in plan.output
    assert "they drop table notes (7 rows now, by 0003_notes)" in plan.output
    assert columns(app_env, "notes") and app_env.status()["version"] == "1.1.0"

    result = invoke("rollback", "--env", str(app_env.env_file))
    assert result.code == 0, result.output
    planned = result.record["rollback_plan"]
    assert planned["path"] == "down migrations" and planned["schema_after"] == "0002"
    assert planned["dropped"] == [{"migration": "0003_notes", "table": "notes", "column": None, "rows": 7}]
    assert columns(app_env, "notes") == []
    page = (result.folder / "index.html").read_text()
    assert "Rollback plan" in page and "drops table notes (7 rows, by 0003_notes)" in page


def test_a_restore_plan_states_the_rows_written_since_the_backup(app_env, build, invoke):
    build("1.0.0")
    build("1.1.0", {"0003_item_note.sql": ADD_NOTE})
    deployed(invoke, app_env, "1.0.0", "1.1.0")
    app_env.write_items(5)
    with psycopg.connect(app_env.database, connect_timeout=5) as conn:
        now = conn.execute("SELECT count(*) FROM items").fetchone()[0]

    plan = invoke("rollback", "--env", str(app_env.env_file), "--plan", "--restore-db")
    assert plan.code == 0, plan.output
    deploy_record = json.loads(sorted((app_env.folder / "reports").glob("*-deploy-*/record.json"))[-1].read_text())
    at_backup = deploy_record["backup"]["drill"]["compared"]["public.items"]["rows"]
    assert lsn(deploy_record["backup"]["lsn"]) <= lsn(deploy_record["switch"]["lsn"])  # the switch comes after the backup
    assert now - at_backup >= 5
    assert "database rollback: restore the backup, because it was asked for (--restore-db)" in plan.output
    assert f"public.items: {now - at_backup} inserted, 0 updated, 0 deleted" in plan.output
    assert "every write since the backup is lost" in plan.output and app_env.status()["version"] == "1.1.0"


def test_a_strict_environment_refuses_a_restore_without_accept_loss_and_states_the_loss(make_env, database_url):
    env = config.load_environment(str(make_env({"strict": True})))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (id serial PRIMARY KEY, amount int)")
    taken = backup.take(env, "strict", "20261202T053000Z-test-backup-5791c1").as_record()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ledger (amount) SELECT i FROM generate_series(1, 4) i")
        conn.execute("UPDATE ledger SET amount = 0 WHERE amount = 1")
    refused = planner.choose(env, None, None, None, taken, restore_db=True, accept_loss=False)
    assert refused.refused and "give --accept-loss" in refused.refused
    assert refused.loss.tables["public.ledger"] == {"inserted": 4, "updated": 1, "deleted": 0}
    assert planner.choose(env, None, None, None, taken, restore_db=True, accept_loss=True).refused is None


def test_a_schema_range_that_names_no_version_is_refused_naming_the_file(app_env, build, invoke):
    build("1.0.0", files={"RUNS_ON_SCHEMA": "latest\n"})
    build("1.1.0", {"0003_item_note.sql": ADD_NOTE})
    deployed(invoke, app_env, "1.0.0", "1.1.0")
    plan = invoke("rollback", "--env", str(app_env.env_file), "--plan")
    assert plan.code == 2 and "RUNS_ON_SCHEMA must name a schema version or a range" in plan.output, plan.output

"""Rollout strategies and batches: Ansible's `serial` and `max_fail_percentage`, the `rolling` strategy's
graceful reload under a steady load, and the load balancer commands around a host's switch."""

import pytest
import yaml

from runbook import config
from runbook.release import rollout

from .apps import change_env
from .packages import broken_health
from .steady_load import Load

MIGRATION_SAFE = "-- migrate:up\nCREATE TABLE notes (id int);\n-- migrate:down\nDROP TABLE notes;\n"
MIGRATION_DROPS = "-- migrate:up\nALTER TABLE items DROP COLUMN name;\n-- migrate:down\nSELECT 1;\n"
MIGRATION_LOCKS_ITEMS = ("-- migrate:up\nALTER TABLE items ADD COLUMN notes text;\n"
                         "-- migrate:down\nALTER TABLE items DROP COLUMN notes;\n")


def hosts(count: int) -> list[config.Host]:
    return [config.Host(name=f"web{n}", spec=f"ssh://root@10.0.0.{n}") for n in range(1, count + 1)]


@pytest.mark.parametrize("serial, count, sizes", [
    ("100%", 3, [3]),
    (1, 3, [1, 1, 1]),
    (2, 5, [2, 2, 1]),
    ([1, "100%"], 3, [1, 2]),
    ([1, "50%"], 5, [1, 2, 2]),
    ("30%", 3, [1, 1, 1]),
    ([1, 2, "100%"], 10, [1, 2, 7]),
])
def test_serial_makes_batches_as_ansible_does(serial, count, sizes):
    made = rollout.batches(serial, hosts(count))
    assert [len(b) for b in made] == sizes
    assert [h.name for b in made for h in b] == [h.name for h in hosts(count)]


@pytest.mark.parametrize("failed, size, limit, stops", [
    (0, 3, 0, False), (1, 3, 0, True), (1, 4, 25, False), (2, 4, 25, True), (1, 1, 99, True), (1, 2, 50, False),
])
def test_max_fail_percentage_is_exceeded_only_above_the_limit(failed, size, limit, stops):
    assert rollout.exceeded(failed, size, limit) is stops


@pytest.mark.parametrize("strategy, serial, count, mixed", [
    ("maintenance", "100%", 3, False), ("maintenance", [1, "100%"], 3, True), ("maintenance", 1, 1, False),
    ("rolling", "100%", 1, True),
])
def test_the_previous_release_meets_the_new_schema_when_rolling_or_in_several_batches(strategy, serial, count, mixed):
    env = config.Environment(
        name="t", hosts=hosts(count), app={"name": "demo", "root": "/srv/app"},
        database={"url": "postgresql://db/app", "backup_dir": "/srv/backups"},
        endpoints={"health": "http://h/health", "status": "http://h/api/status"},
        rollout={"strategy": strategy, "serial": serial},
    )
    assert rollout.previous_release_meets_new_schema(env) is mixed


def test_a_batch_size_of_zero_is_refused(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env({"rollout": {"serial": [1, "0%"]}})))
    assert result.code == 2, result.output
    assert "rollout.serial" in result.output and "'0%' is not a batch size above 0" in result.output


def rolling(app_env, **changes) -> None:
    data = yaml.safe_load(app_env.env_file.read_text())
    data["rollout"] = {"strategy": "rolling", **changes}
    app_env.env_file.write_text(yaml.safe_dump(data, sort_keys=False))


def test_rolling_deploy_answers_every_request_and_rolls_back_gracefully(app_env, build, invoke):
    rolling(app_env)
    build("1.0.0")
    build("1.1.0", {"0003_notes.sql": MIGRATION_SAFE})
    build("1.2.0", {"0003_notes.sql": MIGRATION_SAFE}, edit=broken_health)
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0

    with Load(f"{app_env.base}/api/status", threads=3) as load:
        result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 0, result.output
    assert load.failed == 0, load
    versions = [version for _, _, version in load.samples]
    assert versions[0] == "1.0.0" and versions[-1] == "1.1.0"
    names = [p["name"] for p in result.record["phases"]]
    assert names.index("migrate") < names.index("switch") < names.index("reload") and "stop" not in names

    broken = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.2.0")
    assert broken.code == 1, broken.output
    assert app_env.status() == {"app": "demo", "version": "1.1.0", "schema_version": "0003"}
    back = [p["name"] for p in broken.record["phases"] if p["sequence"] == "rollback"]
    assert back.index("switch-back") < back.index("reload") < back.index("database") and "stop" not in back


def test_rolling_preflight_refuses_a_migration_that_breaks_the_serving_release(app_env, build, invoke):
    rolling(app_env)
    build("1.0.0")
    build("1.1.0", {"0003_drop_names.sql": MIGRATION_DROPS})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    step = result.scenario("Step 2 - Database schema changes are prepared")
    assert step["outcome"] == "failed"
    assert "migration 0003_drop_names: drops a table or column" in result.output + (result.folder / "preflight.html").read_text()
    assert app_env.status()["version"] == "1.0.0" and app_env.schema() == "0002"


def test_rolling_deploy_stops_before_anything_changes_on_a_migration_locking_a_big_table_exclusively(
        app_env, build, invoke):
    change_env(app_env.env_file, {"database": {"drill": {"exclusive_lock_max_mb": 0}}})
    rolling(app_env)
    build("1.0.0")
    build("1.1.0", {"0003_notes.sql": MIGRATION_LOCKS_ITEMS})
    first = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert first.code == 0, first.output
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    assert "[deploy] backup: failed" in result.output, result.output
    assert "rehearsal of 0003_notes: under rollout.strategy rolling it may not take AccessExclusiveLock on " \
           "public.items (" in result.output, result.output
    assert app_env.status()["version"] == "1.0.0" and app_env.schema() == "0002"


def test_load_balancer_drains_a_host_before_its_switch_and_restores_it_after(app_env, build, invoke, tmp_path):
    log = tmp_path / "balancer.log"
    data = yaml.safe_load(app_env.env_file.read_text())
    data["rollout"] = {
        "host_url": app_env.base,
        "drain": ["sh", "-c", f"echo drain {{{{ name }}}} >> {log}"],
        "restore": ["sh", "-c", f"echo restore {{{{ name }}}} >> {log}"],
    }
    app_env.env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    build("1.0.0")
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert result.code == 0, result.output
    assert log.read_text() == "drain localhost\nrestore localhost\n"
    names = [p["name"] for p in result.record["phases"]]
    assert names.index("drain") < names.index("stop") < names.index("hosts") < names.index("restore")


def test_a_failing_drain_command_changes_nothing_and_says_why(app_env, build, invoke):
    build("1.0.0")
    build("1.1.0")
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    data = yaml.safe_load(app_env.env_file.read_text())
    data["rollout"] = {"drain": ["sh", "-c", "echo balancer refused >&2; exit 3"]}
    app_env.env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0")
    assert result.code == 1, result.output
    assert "drain localhost: sh exited 3: balancer refused" in result.output
    assert app_env.status()["version"] == "1.0.0"

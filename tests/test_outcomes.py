"""Outcomes never claim more than was checked: a critical check that cannot run fails a strict gate,
a declared one is not applicable, JUnit XML and Cucumber JSON say the same as the record, and the
phases a failure stopped are in the record as not run."""

import json
import xml.etree.ElementTree as ElementTree

import psycopg

from runbook.record import history
from runbook.record.summaries import RunSummary

TLS = "Step 5 - SSL certificates are valid"
PACKAGE = "Step 2 - The deployment package is complete"


def _phase_file(result, suffix: str) -> str:
    return (result.folder / f"preflight{suffix}").read_text()


def test_a_strict_gate_fails_a_critical_check_that_cannot_run_naming_it(make_env, invoke, build):
    build("1.0.0")
    result = invoke("preflight", "--env", str(make_env({"strict": True})), "--version", "1.0.0")
    assert result.code == 1, result.output
    found = result.scenario(TLS)
    assert found["outcome"] == "failed"
    assert "a critical check that could not run, in a strict environment" in found["message"]
    assert f"BLOCKING: {TLS}" in result.output


def test_a_check_declared_not_applicable_is_not_run_and_says_why_everywhere(make_env, invoke, build):
    build("1.0.0")
    declared = {"scenario": TLS, "reason": "TLS ends at the provider's load balancer (NET-12)"}
    result = invoke("preflight", "--env", str(make_env({"strict": True, "not_applicable": [declared]})),
                    "--version", "1.0.0")
    found = result.scenario(TLS)
    assert found["outcome"] == "not applicable" and found["message"] == declared["reason"]
    assert {s["status"] for s in found["steps"]} == {"not run"}
    cases = ElementTree.fromstring(_phase_file(result, ".xml")).iter("testcase")
    (case,) = [c for c in cases if "ssl_certificates_are_valid" in c.get("name", "")]
    assert case.find("skipped").get("message").endswith(f"not applicable: {declared['reason']}")
    assert "1 not applicable" in result.output


def test_a_strict_environment_refuses_a_gate_without_a_version(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env({"strict": True})))
    assert result.code == 2, result.output
    assert "name the version to gate" in result.output


def test_a_declaration_naming_no_scenario_is_refused_naming_it(make_env, invoke):
    declared = {"scenario": "Step 5 - SSL certificate are valid", "reason": "typo"}
    result = invoke("preflight", "--env", str(make_env({"not_applicable": [declared]})))
    assert result.code == 2, result.output
    assert "no scenario is named 'Step 5 - SSL certificate are valid'" in result.output


def test_cucumber_json_gives_skipped_steps_as_skipped_and_the_verdict_counts_each_outcome(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env()))
    assert result.code == 0, result.output
    features = json.loads(_phase_file(result, ".cucumber.json"))
    (package,) = [e for f in features for e in f["elements"] if e["name"] == PACKAGE]
    statuses = [s["result"]["status"] for s in package["steps"]]
    skipped = statuses.index("skipped")
    assert set(statuses[skipped:]) == {"skipped"}, statuses
    assert "no version requested" in package["steps"][skipped]["result"]["error_message"]
    assert {"name": "@skipped", "line": package["line"]} in package["tags"]
    record = result.scenario(PACKAGE)
    assert record["outcome"] == "skipped" and "no version requested" in record["message"]
    counts = [line for line in result.output.splitlines() if line.startswith("[gate] preflight:")]
    assert counts and all(f" {o}" in counts[0] for o in ("passed", "attested", "waived", "not applicable",
                                                         "skipped", "failed"))


def test_a_deploy_that_fails_at_configure_records_every_later_phase_as_not_run(app_env, build, invoke, tmp_path):
    build("1.0.0")
    shared = tmp_path / "app" / "shared"
    shared.mkdir(parents=True)
    (shared / "config").write_text("a file where the config folder goes: configure cannot write\n")
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0")
    assert result.code == 1, result.output
    phases = [(p["name"], p["outcome"]) for p in result.record["phases"]]
    names = [name for name, _ in phases]
    assert phases[names.index("configure")] == ("configure", "failed")
    later = phases[names.index("configure") + 1:]
    assert [n for n, _ in later] == ["stop", "switch", "migrate", "start", "indexes", "verify-deploy", "health",
                                     "monitoring", "verification", "bake", "finish"]
    assert {o for _, o in later} == {"not run"}
    for name, _ in later:
        page = (result.folder / f"{name}.html").read_text()
        assert "not run: &#39;Update configuration of the new release (Step 7)&#39; failed before it" in page


def test_a_killed_deploy_counts_as_a_failed_change_restored_when_its_recovery_ended():
    passed = RunSummary(run_id="r0", environment="prod", kind="deploy", outcome="passed", started="2026-12-01T09:00:00Z",
                        duration_seconds=60, version="1.0.0")
    killed_ = RunSummary(run_id="r1", environment="prod", kind="deploy", outcome="killed", started="2026-12-01T10:00:00Z",
                         finished="2026-12-01T10:01:00Z", duration_seconds=60, version="1.1.0",
                         killed_in="migrate", recovered_by="r2", restored="2026-12-01T10:05:30Z")
    figures = history.metrics([passed, killed_])["prod"]
    assert figures["deploys"] == 2 and figures["change_failure_rate"] == 0.5
    assert figures["rollbacks"] == 1 and figures["time_to_restore_seconds"] == 270.0


def test_a_release_losing_rows_of_a_table_its_migrations_do_not_name_fails_and_the_backup_restores_them(
        app_env, build, invoke):
    build("1.0.0")
    hidden = ("-- migrate:up\nCREATE TABLE audit (id int);\n"
              "DO $$ BEGIN EXECUTE 'DELETE FROM ' || 'it' || 'ems'; END $$;\n"
              "-- migrate:down\nDROP TABLE audit;\n")
    build("1.1.0", {"0003_audit.sql": hidden})
    assert invoke("deploy", "--env", str(app_env.env_file), "--version", "1.0.0").code == 0
    app_env.write_items(3)
    rows = app_env.rows()
    with psycopg.connect(app_env.database, connect_timeout=5) as conn:
        stored = conn.execute("SELECT count(*) FROM items").fetchone()[0]  # the smoke test's item too
    result = invoke("deploy", "--env", str(app_env.env_file), "--version", "1.1.0", "--restore-db")
    assert result.code == 1, result.output
    found = result.scenario("Step 11 - The data from before the deploy is intact")
    assert found["outcome"] == "failed" and f"table items: {stored} of its {stored} rows" in found["message"]
    assert app_env.status()["version"] == "1.0.0" and app_env.rows() == rows

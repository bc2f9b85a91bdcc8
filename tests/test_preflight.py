"""`invoke preflight` as users run it: a green gate, and each fault turning it red with a named cause."""

import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading

import pytest

from runbook import ROOT

DEMO = ROOT / "demo"


@pytest.fixture
def packaged(invoke, tmp_path):
    """Build a package of the demo (or of a given source) into the test's dist folder."""

    def build(version: str = "1.0.0", source=DEMO):
        result = invoke("package", "--version", version, "--source", str(source), "--name", "demo",
                        "--dest", str(tmp_path / "dist"))
        assert result.code == 0, result.output
        return tmp_path / "dist" / f"demo-{version}.tar.gz"

    return build


def failing(result, scenario: str) -> str:
    """The failure message of `scenario`, after asserting the run failed because of it."""
    assert result.code == 1, result.output
    found = result.scenario(scenario)
    assert found["outcome"] == "failed", found
    return found["message"]


def test_preflight_passes_on_a_healthy_environment_and_writes_the_record(make_env, invoke, packaged):
    packaged("1.0.0")
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.0.0")
    assert result.code == 0, result.output
    record = result.record
    assert record["outcome"] == "passed" and record["version"] == "1.0.0"
    assert {"preflight.html", "preflight.xml", "record.json", "index.html"} <= {p.name for p in result.folder.iterdir()}
    assert (result.reports / "index.html").read_text().count(record["run_id"]) >= 1
    assert record["git_commit"] in (result.folder / "preflight.html").read_text(), "the report names another commit"
    phase = record["phases"][0]
    assert phase["outcome"] == "passed"
    package = next(s for s in phase["scenarios"] if s["scenario"] == "Step 2 - The deployment package is complete")
    assert [s["status"] for s in package["steps"]] == ["passed"] * 6


ALONGSIDE = ["the pg_dump client is not older than the database server",
             "the backup folder is writable with room for a dump of the database",
             "every app host reaches each external service it depends on"]
"""The checks started alongside that run here (the app's refusals and audit log need a release serving)."""


def test_the_preflights_slower_checks_start_as_its_session_begins_and_their_steps_say_when(make_env, invoke,
                                                                                           packaged):
    packaged("1.0.0")
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.0.0")
    assert result.code == 0, result.output
    steps = {s["text"]: s for scenario in result.record["phases"][0]["scenarios"] for s in scenario["steps"]}
    for text in ALONGSIDE:
        said = [e["text"] for e in steps[text]["evidence"] if e.get("title") == "checked before this step"]
        assert steps[text]["status"] == "passed" and len(said) == 1, steps[text]
        assert said[0].endswith(", while earlier checks of this phase ran"), said


def test_disk_threshold_the_machine_cannot_meet_fails_the_gate_naming_the_measured_value(make_env, invoke):
    env = make_env({"thresholds": {"disk_free_percent": 100}})
    result = invoke("preflight", "--env", str(env))
    message = failing(result, "Step 1 - Disk space is available")
    assert "host localhost: disk free on / is" in message and "required at least 100%" in message
    assert "BLOCKING: Step 1 - Disk space is available" in result.output


def test_database_down_fails_the_gate_and_later_steps_show_not_run(make_env, invoke, unused_port):
    env = make_env({"database": {"url": f"postgresql://postgres@127.0.0.1:{unused_port}/nothing"}})
    result = invoke("preflight", "--env", str(env), timeout=120)
    message = failing(result, "Step 1 - Database connections are configured")
    assert f"database 127.0.0.1:{unused_port}/nothing does not answer" in message
    backup = result.scenario("Step 3 - The database can be backed up and the backup verified")
    assert [s["status"] for s in backup["steps"]] == ["passed", "failed", "not run", "not run"]


@pytest.fixture
def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never says a word: an ssh host that hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


def test_unreachable_host_times_out_with_its_name_and_reason(make_env, invoke, silent_server):
    env = make_env({"hosts": [
        {"name": "localhost", "spec": "local://", "roles": ["app"]},
        {"name": "silent", "spec": f"ssh://nobody@127.0.0.1:{silent_server}", "roles": ["web"], "connect_timeout": 2},
    ]})
    result = invoke("preflight", "--env", str(env), timeout=120)
    message = failing(result, "Step 1 - The environment is available and accessible")
    assert "host silent: does not answer" in message and "within 2 s" in message
    assert "host localhost" not in message
    reach = result.scenario("Step 1 - The environment is available and accessible")["steps"][1]
    assert {f["subject"]: f["ok"] for f in reach["evidence"][0]["findings"]} == {"host localhost": True, "host silent": False}


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_dependency_on_a_closed_port_fails_naming_it(make_env, invoke, unused_port, kind):
    role = {"redis": "cache", "amqp": "queue"}[kind]
    env = make_env({"dependencies": [{"name": f"broken-{kind}", "role": role, "kind": kind,
                                      "url": f"{kind}://127.0.0.1:{unused_port}/", "timeout": 3}]})
    result = invoke("preflight", "--env", str(env))
    title = {"cache": "Step 4 - Cache services answer", "queue": "Step 4 - Message queues answer"}[role]
    message = failing(result, title)
    assert f"{kind} dependency broken-{kind}" in message and f"127.0.0.1:{unused_port}" in message


def _rewrite(package, change) -> None:
    """Rewrite a package in place with `change(files)` applied to its {name: bytes}."""
    with tarfile.open(package) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    change(files)
    with tarfile.open(package, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda f: f.pop("demo-1.0.0/app.py"), "manifest files are missing: app.py"),
        (lambda f: f.update({"demo-1.0.0/app.py": f["demo-1.0.0/app.py"] + b"\n# changed\n"}),
         "checksum differs from the manifest for: app.py"),
        (lambda f: f.update({"demo-1.0.0/extra.py": b"print('not shipped')\n"}), "files not in the manifest: extra.py"),
    ],
    ids=["missing-file", "changed-file", "unlisted-file"],
)
def test_tampered_package_fails_the_gate_naming_the_file(make_env, invoke, packaged, change, expected):
    _rewrite(packaged("1.0.0"), change)
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.0.0")
    assert expected in failing(result, "Step 2 - The deployment package is complete")


def test_package_whose_version_file_names_another_version_fails_the_gate(make_env, invoke, packaged):
    packaged("1.0.1").rename(packaged("1.0.0"))
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.0.0")
    message = failing(result, "Step 2 - The deployment package is complete")
    assert "VERSION says '1.0.1' (requested '1.0.0')" in message


def test_migration_without_down_part_fails_the_gate(make_env, invoke, packaged, tmp_path):
    source = tmp_path / "demo"
    shutil.copytree(DEMO, source)
    (source / "migrations" / "0099_no_way_back.sql").write_text("-- migrate:up\nCREATE TABLE t (id int);\n")
    packaged("1.1.0", source)
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.1.0")
    message = failing(result, "Step 2 - Database schema changes are prepared")
    assert "migration 0099_no_way_back: has no down part" in message


@pytest.mark.parametrize("migration, why", [
    ("-- migrate:up\nCREATE TABLE t (id int);\nCOMMIT;\nCREATE TABLE u (id int);\n-- migrate:down\nDROP TABLE u, t;\n",
     "ends its own transaction"),
    ("-- migrate:up\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n-- migrate:down\nDROP INDEX items_name;\n",
     "builds or drops an index concurrently, which cannot run in a transaction"),
])
def test_migration_that_cannot_be_undone_whole_fails_the_gate(make_env, invoke, packaged, tmp_path, migration, why):
    source = tmp_path / "demo"
    shutil.copytree(DEMO, source)
    (source / "migrations" / "0099_half.sql").write_text(migration)
    packaged("1.1.0", source)
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.1.0")
    message = failing(result, "Step 2 - Database schema changes are prepared")
    assert f"migration 0099_half: {why}" in message


def test_migration_declared_outside_a_transaction_with_a_down_part_passes_the_gate(make_env, invoke, packaged, tmp_path):
    source = tmp_path / "demo"
    shutil.copytree(DEMO, source)
    (source / "migrations" / "0099_index.sql").write_text(
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n"
        "-- migrate:down\nDROP INDEX items_name;\n")
    packaged("1.1.0", source)
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.1.0")
    assert result.scenario("Step 2 - Database schema changes are prepared")["outcome"] == "passed", result.output


def test_secret_never_appears_in_reports_or_terminal(make_env, invoke, packaged, secret):
    packaged("1.0.0")
    result = invoke("preflight", "--env", str(make_env()), "--version", "1.0.0")
    assert result.code == 0, result.output
    assert secret not in result.output
    for path in result.reports.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    diff = result.scenario("Step 2 - Configuration changes are shown for review")["steps"][2]["evidence"][0]["text"]
    assert 'APP_SECRET_KEY="***"' in diff


def test_missing_attestation_fails_the_gate_where_required(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env({"attestations": {"required": True}})))
    message = failing(result, "Step 5 - Vulnerability scans completed")
    assert "'vulnerability-scans-completed' is not attested" in message


def test_attestation_is_shown_as_a_persons_word(make_env, invoke, tmp_path):
    attestations = tmp_path / "attestations.yaml"
    attestations.write_text("- item: api-endpoints-reviewed\n  by: Dana Reviewer\n  date: 2026-11-20T09:30:00Z\n"
                            "  version: 1.0.0\n  reference: NET-12\n")
    env = make_env({"attestations": {"file": str(attestations)}})
    result = invoke("preflight", "--env", str(env), "--version", "1.0.0")
    found = result.scenario("Step 2 - API endpoint configurations reviewed")
    assert found["outcome"] == "attested", found
    assert found["steps"][1]["message"] == ("api-endpoints-reviewed: attested by Dana Reviewer on 2026-11-20T09:30:00Z "
                                            "for version 1.0.0, reference NET-12")
    assert result.scenario("Step 5 - Vulnerability scans completed")["outcome"] == "skipped"


def test_pytest_runs_the_same_checks_directly(make_env, secret):
    env = make_env({"thresholds": {"min_cpus": 4096}})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "preflight", "--env", str(env), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=os.environ | {"RUNBOOK_TEST_SECRET": secret},
    )
    assert result.returncode == 1, result.stdout
    assert "host localhost: " in result.stdout and "CPUs (required at least 4096)" in result.stdout


@pytest.mark.parametrize("expires, code", [("2099-12-31", 0), ("2020-01-01", 1)])
def test_a_waived_failure_is_reported_without_blocking_until_the_waiver_expires(make_env, invoke, expires, code):
    waiver = {"scenario": "Step 1 - Disk space is available", "reason": "disk upgrade booked (INFRA-88)",
              "approved_by": "Dana Reviewer", "expires": expires}
    result = invoke("preflight", "--env", str(make_env({"thresholds": {"disk_free_percent": 100}, "waivers": [waiver]})))
    assert result.code == code, result.output
    found = result.scenario("Step 1 - Disk space is available")
    if code == 0:
        assert found["outcome"] == "waived"
        assert "waived by Dana Reviewer until 2099-12-31: disk upgrade booked (INFRA-88)" in found["message"]
        assert "WARNING: Step 1 - Disk space is available" in result.output
    else:
        assert found["outcome"] == "failed" and "its waiver expired on 2020-01-01" in found["message"]

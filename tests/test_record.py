"""The deployment record after a successful and a failed deploy: signed, readable in a real browser,
valid against its schema, with an incident record, notifications and metrics, and no secret anywhere.
"""

import http.server
import json
import shutil
import threading
from pathlib import Path

import jsonschema
import pytest
import yaml
from playwright.sync_api import sync_playwright

from runbook import ROOT
from runbook.record import signing

from . import apps, cli, packages

SCHEMA = json.loads((ROOT / "schemas" / "record.schema.json").read_text())


class Recorder(http.server.BaseHTTPRequestHandler):
    """A notification target that records what it gets and answers with its server's status."""

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.command, self.path, json.loads(body or b"{}")))
        self.send_response(self.server.status)
        self.end_headers()

    do_POST = do_PATCH = _answer

    def log_message(self, *args) -> None:
        pass


def serve(status: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.status, server.received = status, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Deploy 1.0.0 (succeeds) and a 1.1.0 whose /health answers 500 (rolled back), with a webhook that
    is down, a status page answering 500, a chat webhook that works, and the secret as the DB password."""
    folder = tmp_path_factory.mktemp("record")
    chat, page = serve(200), serve(500)
    changes = {
        "signing": {"private_key": f"${{file:{folder}/keys/signing.pem}}"},
        "notifications": [
            {"name": "chat", "kind": "slack", "url": f"http://127.0.0.1:{chat.server_port}/hook?token=${{RUNBOOK_TEST_SECRET}}"},
            {"name": "audit", "kind": "webhook", "url": f"http://127.0.0.1:{apps.free_port()}/down", "attempts": 2},
            {"name": "status", "kind": "statuspage", "url": f"http://127.0.0.1:{page.server_port}/components/demo", "attempts": 2},
        ],
    }
    (folder / "keys").mkdir()
    signing.generate_key(folder / "keys" / "signing.pem")
    with apps.deployable(folder, changes, secret_password=True) as app:
        packages.build(folder, "1.0.0")
        packages.build(folder, "1.1.0", edit=packages.broken_health)
        good = cli.invoke(folder / "reports", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        bad = cli.invoke(folder / "reports", "deploy", "--env", str(app.env_file), "--version", "1.1.0")
        yield {"good": good, "bad": bad, "app": app, "chat": chat, "page": page, "folder": folder}
    chat.shutdown()
    page.shutdown()


def verify(runs, run_folder: Path, *extra: str):
    return cli.invoke(runs["folder"] / "verify-reports", "record.verify", str(run_folder), *extra)


def test_the_two_runs_end_as_the_contract_says(runs):
    assert runs["good"].code == 0, runs["good"].output
    assert runs["bad"].code == 1, runs["bad"].output
    assert runs["app"].status()["version"] == "1.0.0"


@pytest.mark.parametrize("run", ["good", "bad"])
def test_record_json_follows_its_documented_schema(runs, run):
    jsonschema.validate(runs[run].record, SCHEMA)


@pytest.mark.parametrize("run", ["good", "bad"])
def test_untouched_record_verifies(runs, run):
    result = verify(runs, runs[run].folder, "--env", str(runs["app"].env_file))
    assert result.code == 0, result.output
    assert "untouched" in result.output and runs[run].record["signing"]["fingerprint"] in result.output


@pytest.mark.parametrize("change", ["edit", "delete", "add"])
def test_record_changed_after_the_run_fails_verification_naming_the_file(runs, tmp_path, change):
    copy = tmp_path / "run"
    shutil.copytree(runs["good"].folder, copy)
    if change == "edit":
        (copy / "record.json").write_text((copy / "record.json").read_text().replace('"passed"', '"failed"', 1))
        expected = "changed: record.json"
    elif change == "delete":
        (copy / "journal.jsonl").unlink()
        expected = "removed: journal.jsonl"
    else:
        (copy / "note.txt").write_text("added later\n")
        expected = "added: note.txt"
    result = verify(runs, copy, "--env", str(runs["app"].env_file))
    assert result.code == 1 and expected in result.output, result.output


def test_record_verified_with_another_key_fails(runs, tmp_path):
    other = tmp_path / "other.pem"
    signing.generate_key(other)
    data = yaml.safe_load(runs["app"].env_file.read_text())
    data["signing"] = {"private_key": f"${{file:{other}}}"}
    env_file = tmp_path / "other-key.yaml"
    env_file.write_text(yaml.safe_dump(data))
    result = verify(runs, runs["good"].folder, "--env", str(env_file))
    assert result.code == 1 and "signature does not match the manifest for key" in result.output


def test_secret_database_password_appears_in_no_report_and_no_terminal_output(runs):
    for run in ("good", "bad"):
        assert apps.SECRET not in runs[run].output
    for path in (runs["folder"] / "reports").rglob("*"):
        if path.is_file():
            assert apps.SECRET.encode() not in path.read_bytes(), path


def test_failed_run_writes_an_incident_record(runs):
    text = (runs["bad"].folder / "incident.md").read_text()
    for heading in ("## Problem", "## Timeline (UTC)", "## Actions taken", "## Trigger evidence",
                    "## Post-incident review", "### Root cause analysis", "### Process improvements",
                    "### Prevention measures"):
        assert heading in text
    assert "Health checks (Step 10) failed" in text and "rollback started" in text
    assert not (runs["good"].folder / "incident.md").exists()


def test_notifications_are_recorded_and_a_failing_one_does_not_stop_the_deploy(runs):
    deliveries = runs["good"].record["notifications"]
    by_target = {(d["name"], d["event"]): d for d in deliveries}
    assert by_target[("chat", "started")]["ok"] and by_target[("chat", "succeeded")]["ok"]
    assert not by_target[("audit", "started")]["ok"] and by_target[("audit", "started")]["attempts"] == 2
    assert by_target[("status", "started")]["status"] == 500
    texts = [body["text"] for _, _, body in runs["chat"].received]
    assert any("Deploy of 1.1.0 to test rolled back" in t for t in texts)
    assert [body["component"]["status"] for _, _, body in runs["page"].received].count("under_maintenance") == 4


def test_history_shows_every_run_and_the_success_metrics(runs):
    page = (runs["folder"] / "reports" / "index.html").read_text()
    assert runs["good"].record["run_id"] in page and runs["bad"].record["run_id"] in page
    assert "Change failure rate" in page and "50%" in page and "<svg" in page


def test_pages_open_in_headless_chromium_without_errors_and_show_the_facts(runs):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (.ci/run installs it)"
    pages = {
        runs["folder"] / "reports" / "index.html": [runs["bad"].record["run_id"], "Change failure rate"],
        runs["good"].folder / "index.html": ["Deploy 1.0.0 on test: passed", runs["good"].record["backup"]["path"],
                                             runs["good"].record["signing"]["fingerprint"]],
        runs["bad"].folder / "index.html": ["Rolled back: Health checks (Step 10) failed", "rollback"],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            for path, facts in pages.items():
                page = browser.new_page()
                errors = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(path.as_uri())
                text = page.inner_text("body")
                assert not errors, (path, errors)
                for fact in facts:
                    assert fact in text, (path, fact)
        finally:
            browser.close()


def test_each_verifying_phase_leaves_junit_and_cucumber_json(runs):
    folder = runs["good"].folder
    for phase in ("preflight", "verify-deploy", "health", "verification"):
        assert (folder / f"{phase}.xml").read_text().startswith("<?xml")
        features = json.loads((folder / f"{phase}.cucumber.json").read_text())
        steps = [step for feature in features for element in feature["elements"] for step in element["steps"]]
        assert steps and all(step["result"]["status"] in ("passed", "skipped", "failed") for step in steps)

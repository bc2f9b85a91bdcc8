"""The README's first command on `environments/local.yaml` itself, in a copy of the project as a new user
has it: the whole runbook deploys through every phase, and no scenario is left skipped.

The copy holds the working tree's files as git lists them (tracked and new, not ignored), under the state
folder (the local PostgreSQL runs as the postgres user, who must reach it). It uses this venv: the
command's `pip install` is what `.ci/run` has just done. The local stack's ports are the canonical ones,
so nothing else may hold them (a developer's own `invoke local.up` does: `invoke local.down` first).
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from runbook import ROOT

README_VERSION = "1.0.0"


def _invoke(clone, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clone():
    folder = ROOT / ".local" / f"readme-{uuid.uuid4().hex[:8]}"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=60).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    yield folder
    _invoke(folder, "local.down", "--env", "local", timeout=300)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(clone):
    packaged = _invoke(clone, "package", "--version", README_VERSION)
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    deploy = _invoke(clone, "deploy", "--env", "local", "--version", README_VERSION)
    runs = sorted((clone / "reports").glob("*-local-deploy-*"))
    assert runs, deploy.stdout + deploy.stderr
    return deploy, json.loads((runs[-1] / "record.json").read_text()), runs[-1]


def test_the_readme_first_command_deploys_local_through_every_phase(deployed):
    deploy, record, _ = deployed
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert record["outcome"] == "passed" and record["environment"] == "local"
    assert [p["name"] for p in record["phases"] if p["outcome"] not in ("passed", "skipped")] == []


def test_the_local_deploy_leaves_no_scenario_skipped(deployed):
    _, record, _ = deployed
    outcomes = [(p["name"], s["scenario"], s["outcome"], s["message"]) for p in record["phases"] for s in p["scenarios"]]
    assert len(outcomes) > 40, outcomes
    assert [o for o in outcomes if o[2] not in ("passed", "attested", "not applicable")] == []


def test_the_local_report_lists_no_check_as_not_configured(deployed):
    _, _, folder = deployed
    pages = {page.name: page.read_text() for page in folder.glob("*.html")}
    assert pages and [name for name, text in pages.items() if "not configured" in text.lower()] == []

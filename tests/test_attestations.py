"""Attestations that prove something: they cover the gated version or change ticket, expire, are not dated in
the future, are signed by a listed attester, and are not the operator's own where approvals are required."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from runbook import ROOT, config
from runbook.engine.context import RunContext
from runbook.errors import CheckFailed
from runbook.governance import attestation
from runbook.record import signing
from runbook.times import stamp, utc_now

ENDPOINTS, PARAMETERS, SCANS = "Step 2 - API endpoint configurations reviewed", \
    "Step 2 - Security parameter updates reviewed", "Step 5 - Vulnerability scans completed"
DATA = "Step 5 - Data protection requirements met"


def keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """A new Ed25519 private key file and its public key file."""
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    signing.generate_key(private)
    public.write_bytes(signing.public_pem(signing.load_private_key(private.read_bytes())))
    return private, public


def entry(item: str, days_ago: float = 0, **fields) -> dict:
    date = stamp(utc_now() - timedelta(days=days_ago))
    return {"item": item, "by": "Dana Reviewer", "date": date, "version": "1.0.0"} | fields


def write(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def outcome(result, scenario: str) -> tuple[str, str]:
    """The outcome of the attestation step of `scenario` and its message."""
    (step,) = [s for s in result.scenario(scenario)["steps"] if "has attested" in s["text"]]
    return step["status"], step["message"]


def test_an_attestation_must_cover_the_gated_version_be_recent_and_not_in_the_future(make_env, invoke, tmp_path):
    file = write(tmp_path / "attestations.yaml", [
        entry("api-endpoints-reviewed", date="2019-03-01T10:00:00Z"),
        entry("security-parameters-reviewed", version="0.9.0"),
        entry("vulnerability-scans-completed", days_ago=-1),
        entry("data-protection-reviewed", version=None, change="CHG-7"),
    ])
    env = make_env({"strict": True, "attestations": {"file": str(file)}})  # strict: 30 days unless it says
    result = invoke("preflight", "--env", str(env), "--version", "1.0.0")
    assert result.code == 1, result.output
    status, message = outcome(result, ENDPOINTS)
    assert status == "failed" and "days old: older than the 30 days allowed" in message, message
    status, message = outcome(result, PARAMETERS)
    assert status == "failed" and "it covers version 0.9.0, but version 1.0.0 is being gated" in message, message
    status, message = outcome(result, SCANS)
    assert status == "failed" and "in the future" in message, message
    status, message = outcome(result, DATA)
    assert status == "failed" and "it covers change CHG-7, but this run names no change ticket" in message, message


def test_an_attestation_29_days_old_or_dated_within_the_clock_skew_counts(make_env, invoke, tmp_path):
    file = write(tmp_path / "attestations.yaml", [
        entry("api-endpoints-reviewed", days_ago=29),
        entry("vulnerability-scans-completed", days_ago=-2 / 24 / 60),  # two minutes ahead: within the clock skew
    ])
    env = make_env({"strict": True, "attestations": {"file": str(file)}})
    result = invoke("preflight", "--env", str(env), "--version", "1.0.0")
    assert outcome(result, ENDPOINTS)[0] == "attested"
    status, message = outcome(result, SCANS)
    assert status == "attested" and "for version 1.0.0" in message, message


def test_strict_environments_expire_attestations_after_30_days_by_default(tmp_path):
    assert config.load_environment("local").strict is False
    assert config.load_environment("local").attestations.max_age(False) is None
    staging = config.load_environment("staging")
    assert staging.strict is True and staging.attestations.max_age(True) == 30


def test_with_attesters_only_a_valid_signature_by_one_of_them_counts(make_env, invoke, tmp_path):
    listed, listed_public = keypair(tmp_path, "dana")
    other, _ = keypair(tmp_path, "mallory")
    file = write(tmp_path / "attestations.yaml", [entry("api-endpoints-reviewed")])
    env = make_env({"strict": True, "attestations": {"file": str(file), "attesters": [str(listed_public)]}})
    for item, key, by in [("security-parameters-reviewed", other, "Mallory"),
                          ("vulnerability-scans-completed", listed, "Sam Signer"),
                          ("data-protection-reviewed", listed, "Dana Reviewer")]:
        written = invoke("attest", item, "--version", "1.0.0", "--key", str(key), "--env", str(env), "--by", by)
        assert written.code == 0, written.output
    file.write_text(file.read_text().replace("by: Sam Signer", "by: Someone Else"))  # edited after signing
    result = invoke("preflight", "--env", str(env), "--version", "1.0.0")
    status, message = outcome(result, ENDPOINTS)
    assert status == "failed" and "it is not signed" in message, message
    mallory = signing.fingerprint(signing.public_pem(signing.load_private_key(other.read_bytes())))
    status, message = outcome(result, PARAMETERS)
    assert status == "failed" and f"signed by key {mallory}, which is not one of the attesters" in message, message
    status, message = outcome(result, SCANS)
    assert status == "failed" and "its signature does not match its content" in message, message
    status, message = outcome(result, DATA)
    assert status == "attested", message
    assert f"signed by key {signing.fingerprint(listed_public.read_bytes())}" in message


def test_self_attestation_is_refused_where_approvals_are_required(make_env, invoke, tmp_path):
    file = write(tmp_path / "attestations.yaml", [entry("api-endpoints-reviewed", by="dana reviewer"),
                                                   entry("vulnerability-scans-completed", by="Lee Approver")])
    env = make_env({"approval": {"change_ticket": True}, "attestations": {"file": str(file)}})
    result = invoke("preflight", "--env", str(env), "--version", "1.0.0",
                    extra_env={"RUNBOOK_OPERATOR": "Dana Reviewer"})
    status, message = outcome(result, ENDPOINTS)
    assert status == "failed" and "self-attestation refused: 'dana reviewer' is the operator of this run" in message
    assert outcome(result, SCANS)[0] == "attested"


def test_a_change_ticket_attestation_counts_for_the_run_approved_under_it(make_env, tmp_path, secret):
    file = write(tmp_path / "attestations.yaml", [entry("data-protection-reviewed", version=None, change="CHG-7")])
    env = make_env({"attestations": {"file": str(file)}})
    context = RunContext(version="1.0.0", change="CHG-7").write(tmp_path / "context.json")
    results = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "features"), "-m", "preflight",
                    "-k", "Data and protection and requirements", "--env", str(env), "--release-version", "1.0.0",
                    "--context", str(context), f"--results={results}", "-q", "-p", "no:cacheprovider"],
                   cwd=ROOT, capture_output=True, timeout=300, env=os.environ | {"RUNBOOK_TEST_SECRET": secret})
    (scenario,) = json.loads(results.read_text())
    assert scenario["outcome"] == "attested", scenario


def test_a_change_ticket_attestation_counts_for_a_preflight_naming_the_change(make_env, invoke, tmp_path):
    file = write(tmp_path / "attestations.yaml", [entry("data-protection-reviewed", version=None, change="CHG-7")])
    env = make_env({"attestations": {"file": str(file)}})
    assert outcome(invoke("preflight", "--env", str(env), "--version", "1.0.0", "--change", "CHG-7"), DATA)[0] == \
        "attested"


@pytest.mark.parametrize("key", ["missing.pem", "garbage.pem"])
def test_attest_with_an_unusable_key_exits_2_and_writes_nothing(make_env, invoke, tmp_path, key):
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    file = write(tmp_path / "attestations.yaml", [entry("api-endpoints-reviewed")])
    before = file.read_bytes()
    env = make_env({"attestations": {"file": str(file)}})
    result = invoke("attest", "vulnerability-scans-completed", "--version", "1.0.0", "--key", str(tmp_path / key),
                    "--env", str(env))
    assert result.code == 2, result.output
    assert f"key file {tmp_path / key}" in result.output
    assert file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob(".attestations.yaml*")) == []


def test_an_unknown_key_in_an_entry_is_refused_naming_the_file_and_entry(tmp_path):
    file = write(tmp_path / "attestations.yaml", [entry("vulnerability-scans-completed"),
                                                   entry("api-endpoints-reviewed", colour="green")])
    with pytest.raises(CheckFailed, match=rf"{file}: entry 2 \(api-endpoints-reviewed\): colour: Extra inputs"):
        attestation.read(file)


def test_where_none_is_required_an_entry_for_another_version_counts_as_none_and_a_broken_one_still_fails(
        make_env, invoke, tmp_path):
    file = write(tmp_path / "attestations.yaml", [
        entry("api-endpoints-reviewed", version="1.0.0"),
        entry("vulnerability-scans-completed", days_ago=-1),
    ])
    env = make_env({"strict": False, "attestations": {"file": str(file), "required": False}})
    result = invoke("preflight", "--env", str(env), "--version", "1.1.0")
    status, message = outcome(result, ENDPOINTS)
    assert status == "skipped" and "it covers version 1.0.0, but version 1.1.0 is being gated" in message, message
    assert "not required in test" in message, message
    status, message = outcome(result, SCANS)
    assert status == "failed" and "in the future" in message, message

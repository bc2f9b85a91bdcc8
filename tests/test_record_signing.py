"""A run folder's signed manifest: untouched it verifies, and any edit, addition (empty folders too), removal
or re-signing shows; `invoke record.verify` trusts only the key pinned outside the folder."""

import hashlib
import json
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from runbook.record import signing
from runbook.errors import ConfigError


def _key(path):
    signing.generate_key(path)
    return path.read_bytes()


def _public(private_pem):
    return signing.public_pem(signing.load_private_key(private_pem))


@pytest.fixture
def trusted_key(tmp_path):
    (tmp_path / "keys").mkdir()
    return _key(tmp_path / "keys" / "trusted.pem")


@pytest.fixture
def attacker_key(tmp_path):
    (tmp_path / "attacker").mkdir()
    return _key(tmp_path / "attacker" / "attacker.pem")


@pytest.fixture
def run(tmp_path, trusted_key):
    """A signed run folder as a deploy leaves it, with a subfolder."""
    folder = tmp_path / "reports" / "20260101T020000Z-prod-1.4.0"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>deploy prod 1.4.0</h1>\n")
    (folder / "record.json").write_text('{"outcome": "done", "version": "1.4.0"}\n')
    (folder / "journal.jsonl").write_text('{"event": "start"}\n{"event": "finish"}\n')
    (folder / "preflight.html").write_text("<table>passed</table>\n")
    (folder / "preflight.xml").write_text('<testsuite failures="0"/>\n')
    (folder / "assets" / "style.css").write_text("body { margin: 0 }\n")
    signing.sign(folder, trusted_key)
    return folder


def test_an_untouched_folder_verifies_and_sha256sum_accepts_its_manifest(run, trusted_key):
    assert signing.verify(run, _public(trusted_key)) == []
    check = subprocess.run(["sha256sum", "--strict", "-c", signing.MANIFEST], cwd=run,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "record.json: OK" in check.stdout and "assets/style.css: OK" in check.stdout
    assert signing.MANIFEST not in check.stdout and signing.SIGNATURE not in check.stdout


def test_sign_returns_the_public_key_and_its_fingerprint(tmp_path, trusted_key):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "record.json").write_text("{}\n")
    signed = signing.sign(folder, trusted_key)
    assert signed == {"public_key": _public(trusted_key).decode(), "fingerprint": signing.fingerprint(_public(trusted_key))}


def test_an_edited_file_is_reported_as_changed(run, trusted_key):
    (run / "record.json").write_text('{"outcome": "done", "version": "1.3.9"}\n')
    assert signing.verify(run, _public(trusted_key)) == ["changed: record.json"]


def test_a_deleted_file_is_reported_as_removed(run, trusted_key):
    (run / "assets" / "style.css").unlink()
    assert signing.verify(run, _public(trusted_key)) == ["removed: assets/style.css"]


@pytest.mark.parametrize("added", ["rollback-health.html", "assets/extra.js", "new/deeper/note.txt"])
def test_an_added_file_is_reported_as_added_even_in_a_subfolder(run, trusted_key, added):
    (run / added).parent.mkdir(parents=True, exist_ok=True)
    (run / added).write_text("not part of the run\n")
    assert signing.verify(run, _public(trusted_key)) == [f"added: {added}"]


def test_an_added_symlink_is_reported_without_following_it(run, trusted_key, tmp_path):
    (run / "evidence.txt").symlink_to(tmp_path / "nowhere")
    assert signing.verify(run, _public(trusted_key)) == ["added: evidence.txt"]


def test_verifying_with_a_different_key_names_that_keys_fingerprint(run, attacker_key):
    other = _public(attacker_key)
    assert signing.verify(run, other) == [f"signature does not match the manifest for key {signing.fingerprint(other)}"]


def test_a_folder_re_signed_with_an_attackers_key_fails_against_the_trusted_key(run, trusted_key, attacker_key):
    (run / "record.json").write_text('{"outcome": "done", "version": "1.3.9"}\n')
    signing.sign(run, attacker_key)
    assert signing.verify(run, _public(attacker_key)) == []
    assert signing.verify(run, _public(trusted_key)) == [
        f"signature does not match the manifest for key {signing.fingerprint(_public(trusted_key))}"
    ]


def test_a_manifest_edited_to_match_an_edited_file_breaks_the_signature(run, trusted_key):
    edited = b'{"outcome": "done", "version": "1.3.9"}\n'
    old = hashlib.sha256((run / "record.json").read_bytes()).hexdigest()
    (run / "record.json").write_bytes(edited)
    manifest = run / signing.MANIFEST
    manifest.write_text(manifest.read_text().replace(old, hashlib.sha256(edited).hexdigest()))
    assert signing.verify(run, _public(trusted_key)) == [
        f"signature does not match the manifest for key {signing.fingerprint(_public(trusted_key))}"
    ]


def test_a_missing_manifest_or_signature_is_reported_not_raised(run, trusted_key):
    (run / signing.SIGNATURE).unlink()
    assert signing.verify(run, _public(trusted_key)) == [f"{signing.SIGNATURE} is missing"]
    (run / signing.MANIFEST).unlink()
    assert signing.verify(run, _public(trusted_key)) == [f"{signing.MANIFEST} is missing", f"{signing.SIGNATURE} is missing"]


def test_a_malformed_manifest_or_signature_is_reported_not_raised(run, trusted_key):
    (run / signing.SIGNATURE).write_text("not base64!\n")
    assert signing.verify(run, _public(trusted_key)) == [f"{signing.SIGNATURE} is malformed: not base64"]
    with (run / signing.MANIFEST).open("a") as manifest:
        manifest.write("garbage\n")
    problems = signing.verify(run, _public(trusted_key))
    assert problems[0].startswith(f"{signing.MANIFEST} line 7 is malformed: 'garbage'")


def test_an_invalid_public_key_is_a_configuration_error(run, trusted_key):
    with pytest.raises(ConfigError, match="not a PEM public key"):
        signing.verify(run, b"-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        signing.verify(run, trusted_key)


def test_generate_key_writes_mode_0600_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "signing.pem"
    signing.generate_key(path)
    first = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.startswith(b"-----BEGIN PRIVATE KEY-----")
    signing.load_private_key(first)
    with pytest.raises(ConfigError, match="already exists"):
        signing.generate_key(path)
    assert path.read_bytes() == first


def test_the_fingerprint_is_stable_and_starts_with_sha256(trusted_key, attacker_key):
    public = _public(trusted_key)
    raw = signing.load_private_key(trusted_key).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert signing.fingerprint(public) == signing.fingerprint(_public(trusted_key))
    assert signing.fingerprint(public) == "SHA256:" + hashlib.sha256(raw).hexdigest()
    assert signing.fingerprint(public).startswith("SHA256:") and len(signing.fingerprint(public)) == 7 + 64
    assert signing.fingerprint(public) != signing.fingerprint(_public(attacker_key))


def test_an_added_empty_folder_is_reported_as_added(run, trusted_key):
    (run / "empty" / "deeper").mkdir(parents=True)
    (run / "assets" / "nothing").mkdir()
    assert signing.verify(run, _public(trusted_key)) == [
        "added: assets/nothing/ (a folder with no files)", "added: empty/ (a folder with no files)"]


@pytest.fixture
def pinned_env(make_env, tmp_path, trusted_key):
    """An environment file in the repository whose signing key is the trusted one."""
    return make_env({"signing": {"private_key": f"${{file:{tmp_path / 'keys' / 'trusted.pem'}}}"}})


@pytest.fixture
def signed_run(run, pinned_env, trusted_key):
    """The run folder with the record a run of `pinned_env` writes: its environment and signing key named."""
    record = {"outcome": "done", "version": "1.4.0", "environment": "test", "environment_file": str(pinned_env),
              "signing": signing.identity(trusted_key)}
    (run / "record.json").write_text(json.dumps(record) + "\n")
    signing.sign(run, trusted_key)
    return run


def test_record_verify_trusts_the_environment_given_and_exits_0_when_untouched(signed_run, pinned_env, invoke,
                                                                               trusted_key):
    result = invoke("record.verify", str(signed_run), "--env", str(pinned_env))
    assert result.code == 0, result.output
    assert f"untouched, 6 files as signed by key {signing.fingerprint(_public(trusted_key))}" in result.output


def test_an_attacker_who_names_their_own_environment_and_key_and_re_signs_is_refused(
        signed_run, pinned_env, invoke, tmp_path, trusted_key, attacker_key):
    evil = tmp_path / "attacker" / "evil.yaml"
    evil.write_text(pinned_env.read_text().replace("trusted.pem", "../attacker/attacker.pem").replace(
        "name: test", "name: evil"))
    record = json.loads((signed_run / "record.json").read_text())
    record |= {"version": "1.3.9", "environment": "evil", "environment_file": str(evil),
               "signing": signing.identity(attacker_key)}
    (signed_run / "record.json").write_text(json.dumps(record) + "\n")
    signing.sign(signed_run, attacker_key)
    theirs, ours = signing.fingerprint(_public(attacker_key)), signing.fingerprint(_public(trusted_key))
    result = invoke("record.verify", str(signed_run), "--env", str(pinned_env))
    assert result.code == 1, result.output
    assert f"signer: the record names key {theirs}, the trusted key is {ours}" in result.output
    assert f"signature does not match the manifest for key {ours}" in result.output
    assert "environment: the record names 'evil', verified as 'test'" in result.output
    assert "untouched" not in result.output
    alone = invoke("record.verify", str(signed_run))
    assert alone.code == 2 and "give --env NAME" in alone.output, alone.output


def test_an_added_empty_folder_fails_record_verify(signed_run, pinned_env, invoke):
    (signed_run / "later").mkdir()
    result = invoke("record.verify", str(signed_run), "--env", str(pinned_env))
    assert result.code == 1 and "added: later/ (a folder with no files)" in result.output, result.output


def test_a_missing_record_json_is_a_difference_named(signed_run, pinned_env, invoke):
    (signed_run / "record.json").unlink()
    result = invoke("record.verify", str(signed_run), "--env", str(pinned_env))
    assert result.code == 1 and "record.json is missing" in result.output, result.output


def test_a_missing_environment_file_is_a_usage_error(signed_run, invoke, tmp_path):
    result = invoke("record.verify", str(signed_run), "--env", str(tmp_path / "absent.yaml"))
    assert result.code == 2 and "the environment file does not exist" in result.output, result.output


def test_key_file_given_on_the_command_line_is_the_one_trusted(signed_run, invoke, tmp_path, trusted_key, attacker_key):
    (tmp_path / "trusted.pub").write_bytes(_public(trusted_key))
    (tmp_path / "attacker.pub").write_bytes(_public(attacker_key))
    right = invoke("record.verify", str(signed_run), "--key", str(tmp_path / "trusted.pub"))
    assert right.code == 0 and "untouched" in right.output, right.output
    wrong = invoke("record.verify", str(signed_run), "--key", str(tmp_path / "attacker.pub"))
    assert wrong.code == 1 and "signer: the record names key" in wrong.output, wrong.output


@pytest.mark.parametrize("pin", ["public_key", "fingerprint"])
def test_a_verifier_pins_the_public_key_or_its_fingerprint_without_the_private_key(
        signed_run, make_env, invoke, tmp_path, trusted_key, attacker_key, pin):
    (tmp_path / "trusted.pub").write_bytes(_public(trusted_key))
    value = str(tmp_path / "trusted.pub") if pin == "public_key" else signing.fingerprint(_public(trusted_key))
    verifier = make_env({"signing": {pin: value}}, name="verifier.yaml")
    assert invoke("record.verify", str(signed_run), "--env", str(verifier)).code == 0
    record = json.loads((signed_run / "record.json").read_text()) | {"signing": signing.identity(attacker_key)}
    (signed_run / "record.json").write_text(json.dumps(record) + "\n")
    signing.sign(signed_run, attacker_key)
    result = invoke("record.verify", str(signed_run), "--env", str(verifier))
    assert result.code == 1 and "signer: the record names key" in result.output, result.output


def test_a_pinned_fingerprint_that_is_not_the_pinned_public_keys_is_a_usage_error(
        signed_run, make_env, invoke, tmp_path, trusted_key, attacker_key):
    (tmp_path / "trusted.pub").write_bytes(_public(trusted_key))
    verifier = make_env({"signing": {"public_key": str(tmp_path / "trusted.pub"),
                                     "fingerprint": signing.fingerprint(_public(attacker_key))}}, name="both.yaml")
    result = invoke("record.verify", str(signed_run), "--env", str(verifier))
    assert result.code == 2 and "is not the fingerprint of signing.public_key" in result.output, result.output

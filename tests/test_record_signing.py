"""A run folder's signed manifest: untouched it verifies, and any edit, addition, removal or re-signing shows."""

import hashlib
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

"""`invoke package`: a versioned archive with a VERSION file and a manifest `sha256sum -c` accepts."""

import shutil
import subprocess
import tarfile

import pytest

from runbook import ROOT
from runbook.release import package


def test_package_holds_the_app_its_version_and_a_manifest_sha256sum_accepts(invoke, tmp_path):
    source = tmp_path / "demo"
    shutil.copytree(ROOT / "demo", source)
    (source / "__pycache__").mkdir(exist_ok=True)
    (source / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    (source / ".env").write_text("APP_SECRET_KEY=local-only\n")
    result = invoke("package", "--version", "1.2.3", "--source", str(source), "--dest", str(tmp_path / "dist"))
    assert result.code == 0, result.output
    archive = tmp_path / "dist" / "demo-1.2.3.tar.gz"
    assert package.checksum(archive) in result.output
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "out", filter="data")
    unpacked = tmp_path / "out" / "demo-1.2.3"
    assert (unpacked / "VERSION").read_text() == "1.2.3\n"
    assert not (unpacked / ".env").exists() and not (unpacked / "__pycache__").exists()
    check = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=unpacked,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "app.py: OK" in check.stdout and "migrations/0001_initial.sql: OK" in check.stdout
    assert (unpacked / "bin" / "migrate").stat().st_mode & 0o111, "executables stay executable"


@pytest.mark.parametrize("version", ["1.0/../../etc", "..", "1.0 beta", "1.0;rm -rf /", "$(id)", "", "9.9.9\n",
                                     "9.9.9\n\n", "\n9.9.9"])
def test_unsafe_version_is_refused_before_anything_is_written(invoke, tmp_path, version):
    result = invoke("package", "--version", version, "--dest", str(tmp_path / "dist"))
    assert result.code == 2 and f"version {version!r} is not valid" in result.output, result.output
    assert not (tmp_path / "dist").exists()


def test_a_trailing_newline_is_refused_in_deploy_versions_and_rollback_targets(invoke, tmp_path):
    # The environment does not exist: the value is refused before anything opens it.
    absent = str(tmp_path / "absent.yaml")
    deploy = invoke("deploy", "--env", absent, "--version", "9.9.9\n")
    assert deploy.code == 2 and "version '9.9.9\\n' is not valid" in deploy.output, deploy.output
    rollback = invoke("rollback", "--env", absent, "--to", "20261128T090000Z-1.1.0\n")
    assert rollback.code == 2, rollback.output
    assert "release '20261128T090000Z-1.1.0\\n' is not valid" in rollback.output
    assert not (tmp_path / "reports").exists()


def test_missing_source_folder_is_refused(invoke, tmp_path):
    result = invoke("package", "--version", "1.0.0", "--source", str(tmp_path / "nothing"), "--dest", str(tmp_path))
    assert result.code == 2 and "is not a folder" in result.output


def test_every_task_explains_itself_in_invoke_list(invoke):
    result = invoke("--list")
    assert result.code == 0
    for name in ("preflight", "package", "local.up", "local.down"):
        line = next((l for l in result.output.splitlines() if l.strip().startswith(name + " ")), "")
        assert len(line.split(None, 1)) == 2, f"{name} has no one-line help: {result.output}"


def test_a_package_is_read_as_a_stream_keeping_the_text_of_only_the_members_asked_for(tmp_path):
    source = tmp_path / "app"
    (source / "migrations").mkdir(parents=True)
    (source / "migrations" / "0001_a.sql").write_text("-- up\nSELECT 1;\n")
    (source / "blob.bin").write_bytes(b"x" * (3 * package.CHUNK + 5))
    built = package.build(source, "app", "1.0.0", tmp_path / "dist")
    contents = package.read(built, ("migrations/",))
    assert sorted(contents.files) == ["MANIFEST.sha256", "VERSION", "migrations/0001_a.sql"]
    assert sorted(contents.digests) == ["MANIFEST.sha256", "VERSION", "blob.bin", "migrations/0001_a.sql"]
    assert all(f.ok for f in package.integrity(contents) + package.presence(contents) + package.unlisted_files(contents))
    tampered = tmp_path / "tampered"
    with tarfile.open(built) as tar:
        tar.extractall(tampered, filter="data")
    (tampered / "app-1.0.0" / "blob.bin").write_bytes(b"y" * (3 * package.CHUNK + 5))
    repacked = tmp_path / "app-1.0.0.tar.gz"
    with tarfile.open(repacked, "w:gz") as tar:
        tar.add(tampered / "app-1.0.0", "app-1.0.0")
    assert package.read(repacked).changed == ["blob.bin"]

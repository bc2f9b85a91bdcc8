"""Versioned deployment packages: `<app>-<version>.tar.gz` with the app, a VERSION file and a manifest.

The manifest (`MANIFEST.sha256`) has one `<sha256>  <path>` line per file, as `sha256sum` writes it,
so a package can also be checked by hand with `sha256sum -c MANIFEST.sha256`.
"""

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from packaging.requirements import Requirement

from runbook.config import Environment, Host
from runbook.errors import ConfigError
from runbook.findings import Finding
from runbook.hosts import connection, runner
from runbook.release import commands

MANIFEST = "MANIFEST.sha256"
VERSION = "VERSION"
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
"""A whole version (always `fullmatch`: `$` would let a trailing newline through)."""
SKIPPED = {"__pycache__", ".env", ".git", "uploads", VERSION, MANIFEST}


def validate_version(version: str) -> str:
    """The version if it is safe in file names and commands; `ConfigError` naming what is wrong."""
    if not VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise ConfigError(
            f"version {version!r} is not valid: use letters, digits and '.', '_', '+', '-' "
            "(starting with a letter or digit, no '..', at most 64 characters)"
        )
    return version


def file_name(app: str, version: str) -> str:
    return f"{app}-{validate_version(version)}.tar.gz"


def _sources(source: Path) -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        files += [Path(folder, n) for n in sorted(names) if n not in SKIPPED and not n.endswith(".pyc")]
    return files


CHUNK = 1 << 20
"""Files and members are hashed and copied 1 MiB at a time: memory stays the same whatever their size."""


def _digest(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def build(source: Path, app: str, version: str, dest: Path) -> Path:
    """Write `dest/<app>-<version>.tar.gz` from the app folder `source`; the file appears whole or not at all."""
    if not source.is_dir():
        raise ConfigError(f"package source {source} is not a folder")
    target = dest / file_name(app, version)
    prefix = f"{app}-{version}"
    files = {f.relative_to(source).as_posix(): f for f in _sources(source)}
    version_file = f"{version}\n".encode()
    digests = {name: _file_digest(path) for name, path in files.items()} | {VERSION: _digest(io.BytesIO(version_file))}
    manifest = "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items())).encode()
    dest.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=dest, prefix=f".{prefix}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for name in sorted(digests):
                if name == VERSION:
                    _add(tar, f"{prefix}/{name}", io.BytesIO(version_file), len(version_file), 0o644)
                    continue
                with files[name].open("rb") as f:
                    _add(tar, f"{prefix}/{name}", f, files[name].stat().st_size, files[name].stat().st_mode & 0o777)
            _add(tar, f"{prefix}/{MANIFEST}", io.BytesIO(manifest), len(manifest), 0o644)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


def _file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return _digest(f)


def _add(tar: tarfile.TarFile, name: str, data: BinaryIO, size: int, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    tar.addfile(info, data)


@dataclass
class Contents:
    """What a package holds and how it compares with its own manifest: every member's SHA-256, and the
    text of the members the checks read (VERSION, the manifest and those `read` was asked to keep)."""

    path: Path
    digests: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """The kept members' text."""
    manifest: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Structural problems: unreadable archive, unsafe member, missing or malformed manifest."""

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.manifest) - set(self.digests))

    @property
    def changed(self) -> list[str]:
        return sorted(n for n, d in self.manifest.items() if n in self.digests and self.digests[n] != d)

    @property
    def unlisted(self) -> list[str]:
        return sorted(set(self.digests) - set(self.manifest) - {MANIFEST})

    @property
    def version(self) -> str | None:
        data = self.files.get(VERSION)
        return data.decode(errors="replace").strip() if data is not None else None


def texts(env: Environment) -> tuple[str, ...]:
    """The members a deploy reads the text of: the requirements file and the migrations folder."""
    return env.app.requirements, env.app.migrations.dir.rstrip("/") + "/"


def _kept(name: str, keep: tuple[str, ...]) -> bool:
    return name in (VERSION, MANIFEST) or any(name == k or (k.endswith("/") and name.startswith(k)) for k in keep)


def read(path: Path, keep: tuple[str, ...] = ()) -> Contents:
    """Read a package without unpacking it, as a stream: every member must be a regular file inside one
    top folder; each is hashed 1 MiB at a time, and only VERSION, the manifest and the members `keep`
    names (a file, or a folder ending in "/") are kept as text."""
    contents = Contents(path)
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if member.isdir():
                    continue
                if not member.isfile() or name.is_absolute() or ".." in name.parts or len(name.parts) < 2:
                    contents.problems.append(f"unsafe member {member.name!r} (not a plain file inside the package folder)")
                    continue
                inside = PurePosixPath(*name.parts[1:]).as_posix()
                stream = tar.extractfile(member)
                if _kept(inside, keep):
                    contents.files[inside] = stream.read()
                    contents.digests[inside] = _digest(io.BytesIO(contents.files[inside]))
                else:
                    contents.digests[inside] = _digest(stream)
    except (OSError, tarfile.TarError, EOFError) as e:
        contents.problems.append(f"cannot read {path}: {e}")
        return contents
    manifest = contents.files.get(MANIFEST)
    if manifest is None:
        contents.problems.append(f"{MANIFEST} is missing")
        return contents
    contents.manifest, malformed = manifest_entries(manifest.decode(errors="replace"))
    contents.problems += [f"{MANIFEST} line {number} is malformed: {line[:80]!r}" for number, line in malformed]
    return contents


def manifest_entries(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """A manifest's `<sha256>  <path>` lines as path -> sha256, and the (number, line) of those that are not."""
    entries, malformed = {}, []
    for number, line in enumerate(text.splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        if match:
            entries[match.group(2)] = match.group(1)
        else:
            malformed.append((number, line))
    return entries, malformed


def checksum(path: Path) -> str:
    """The package file's SHA-256, read 1 MiB at a time."""
    return _file_digest(path)


def presence(contents: Contents) -> list[Finding]:
    subject = f"package {contents.path.name}"
    if contents.missing:
        return [Finding(subject, False, f"{len(contents.missing)} manifest files are missing: {', '.join(contents.missing)}")]
    return [Finding(subject, True, f"all {len(contents.manifest)} manifest files are present")]


def integrity(contents: Contents) -> list[Finding]:
    subject = f"package {contents.path.name}"
    if contents.changed:
        return [Finding(subject, False, f"checksum differs from the manifest for: {', '.join(contents.changed)}")]
    return [Finding(subject, True, f"{len(contents.manifest) - len(contents.missing)} files match their SHA-256 checksums")]


def unlisted_files(contents: Contents) -> list[Finding]:
    subject = f"package {contents.path.name}"
    if contents.unlisted:
        return [Finding(subject, False, f"files not in the manifest: {', '.join(contents.unlisted)}")]
    return [Finding(subject, True, "every file is listed in the manifest")]


def version_matches(contents: Contents, version: str) -> Finding:
    subject = f"package {contents.path.name}"
    found = contents.version
    if found is None:
        return Finding(subject, False, f"has no {VERSION} file")
    return Finding(subject, found == version, f"{VERSION} says {found!r} (requested {version!r})")


def requirements(contents: Contents, file: str) -> list[Requirement]:
    data = contents.files.get(file, b"").decode(errors="replace")
    lines = (line.split("#", 1)[0].strip() for line in data.splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def requirements_met(env: Environment, contents: Contents) -> list[Finding]:
    """Each requirement in the package's requirements file, against what each app host has installed."""
    wanted = requirements(contents, env.app.requirements)
    if not wanted:
        return [Finding(f"package {contents.path.name}", True, f"declares no requirements in {env.app.requirements}")]

    def check(host: Host) -> list[Finding]:
        result = runner.run(host, commands.installed_versions(env.python, [r.name for r in wanted]))
        subject = f"host {host.name}"
        if result.rc != 0:
            return [Finding(subject, False, f"{env.python} cannot list installed packages: {result.stderr.strip()[-200:]}")]
        installed = json.loads(result.stdout)
        return [_requirement(subject, r, installed.get(r.name)) for r in wanted]

    return [f for per_host in connection.each(env.hosts_with("app"), check) for f in per_host]


def _requirement(subject: str, requirement: Requirement, version: str | None) -> Finding:
    if version is None:
        return Finding(subject, False, f"{requirement} is not installed")
    ok = requirement.specifier.contains(version, prereleases=True)
    return Finding(subject, ok, f"{requirement.name} {version} installed (requires {requirement})")

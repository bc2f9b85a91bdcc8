"""Tamper evidence for a run folder (`reports/<run-id>/`): a manifest of every file, signed with Ed25519.

`sign` writes `MANIFEST.sha256`, one `<sha256>  <relative/path>` line per file as `sha256sum` writes
it (so `sha256sum -c MANIFEST.sha256` run inside the folder checks it by hand), and `MANIFEST.sig`,
the base64 Ed25519 signature of the manifest's bytes. `verify` recomputes the manifest, refuses files
and folders it does not list, and checks the signature against a public key the caller trusts
(`runbook.record.trust` pins it outside the folder): files replaced and re-signed with another key are
reported, not accepted.

A key is named by its fingerprint, `SHA256:` followed by the 64 lowercase hex digits of the SHA-256
of the raw 32-byte Ed25519 public key, e.g. `SHA256:3b1f...9c0a`.
"""

import base64
import binascii
import errno
import hashlib
import os
import re
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runbook.config import Environment
from runbook.errors import ActionFailed, ConfigError
from runbook.secrets import expand

MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sig"
LINE = re.compile(r"([0-9a-f]{64})  (.+)")
ESCAPED = re.compile(r"[\\\n\r]")
"""Characters `sha256sum` escapes in a name; `sign` refuses them rather than write an escaped line."""


def generate_key(path: Path) -> None:
    """Write a new Ed25519 private key to `path` (unencrypted PKCS8 PEM, mode 0600); never overwrite one."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"signing key {path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise ConfigError(f"signing key {path} cannot be written: {e.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """The Ed25519 private key in an unencrypted PEM; `ConfigError` (never quoting the key) otherwise."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError("the signing private key is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the signing private key is not an Ed25519 key")
    return key


def public_pem(private_key: Ed25519PrivateKey) -> bytes:
    """The public half of `private_key` as a SubjectPublicKeyInfo PEM."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError("the signing public key is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the signing public key is not an Ed25519 key")
    return key


def fingerprint(public_pem: bytes) -> str:
    """`SHA256:<hex>`: the SHA-256 of the raw 32-byte public key in a SubjectPublicKeyInfo PEM."""
    raw = load_public_key(public_pem).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def _files(folder: Path) -> list[str]:
    """Every entry under `folder` but its readable folders (symlinks included, never followed), as relative POSIX paths."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                try:
                    found += [f"{entry.name}/{name}" for name in _files(Path(entry.path))]
                    continue
                except OSError:
                    pass  # an unreadable folder is listed as itself: an entry that is not a regular file
            found.append(entry.name)
    return found


def listed(folder: Path) -> list[str]:
    """The files a manifest of `folder` lists (all but the manifest and its signature)."""
    return sorted(name for name in _files(folder) if name not in (MANIFEST, SIGNATURE))


def _folders(folder: Path, prefix: str = "") -> list[str]:
    """Every readable folder under `folder` (symlinks never followed), as `relative/path/`."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                name = f"{prefix}{entry.name}/"
                try:
                    found += [name, *_folders(Path(entry.path), name)]
                except OSError:
                    pass  # an unreadable folder is listed by `_files` as an entry of its own
    return found


def _unlisted_folders(folder: Path, names: set[str]) -> list[str]:
    """The outermost folders that hold none of `names` (the files signed or present): empty ones, added."""
    implied = {name[:i + 1] for name in names for i, char in enumerate(name) if char == "/"}
    extra = [name for name in _folders(folder) if name not in implied]
    return sorted(name for name in extra if not any(name != other and name.startswith(other) for other in extra))


def _digest(path: Path) -> str:
    """The SHA-256 of a regular file; OSError for anything else (a symlink, a device, a folder)."""
    if not stat.S_ISREG(path.lstat().st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def sign(folder: Path, private_key_pem: bytes) -> dict:
    """Write `MANIFEST.sha256` and `MANIFEST.sig` in `folder`; the public key (PEM text) and its fingerprint."""
    key = load_private_key(private_key_pem)
    lines = []
    for name in listed(folder):
        if ESCAPED.search(name):
            raise ActionFailed(f"cannot sign {folder}: the file name {name!r} holds a newline, carriage return or backslash")
        try:
            lines.append(f"{_digest(folder / name)}  {name}\n")
        except OSError as e:
            raise ActionFailed(f"cannot sign {folder}: {name}: {e.strerror}") from None
    manifest = _encode("".join(lines))
    (folder / MANIFEST).write_bytes(manifest)
    (folder / SIGNATURE).write_text(base64.b64encode(key.sign(manifest)).decode() + "\n")
    return identity(private_key_pem)


def _shown(name: str) -> str:
    """A path as problems show it: as is, or quoted when it holds a newline or other unprintable character."""
    return name if name.isprintable() else repr(name)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _parse(manifest: bytes) -> tuple[dict[str, str], list[str]]:
    """The digests a manifest lists by path, and the problems of its malformed lines."""
    digests, problems = {}, []
    lines = manifest.decode("utf-8", "surrogateescape").split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        match = LINE.fullmatch(line)
        if match:
            digests[match.group(2)] = match.group(1)
        else:
            problems.append(f"{MANIFEST} line {number} is malformed: {line[:80]!r}")
    return digests, problems


def _signature_problems(
    manifest: bytes, signature: bytes | None, public_key: Ed25519PublicKey, key_name: str
) -> list[str]:
    if signature is None:
        return [f"{SIGNATURE} is missing"]
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except binascii.Error:
        return [f"{SIGNATURE} is malformed: not base64"]
    if len(raw) != 64:
        return [f"{SIGNATURE} is malformed: {len(raw)} bytes, an Ed25519 signature has 64"]
    try:
        public_key.verify(raw, manifest)
    except InvalidSignature:
        return [f"signature does not match the manifest for key {key_name}"]
    return []


def _file_problems(folder: Path, digests: dict[str, str]) -> list[str]:
    problems = []
    present = set(listed(folder))
    for name in sorted(present | set(digests)):
        if name not in present:
            problems.append(f"removed: {_shown(name)}")
        elif name not in digests:
            problems.append(f"added: {_shown(name)}")
        else:
            try:
                if _digest(folder / name) != digests[name]:
                    problems.append(f"changed: {_shown(name)}")
            except OSError as e:
                problems.append(f"changed: {_shown(name)} ({e.strerror})")
    extra = _unlisted_folders(folder, present | set(digests))
    return problems + [f"added: {_shown(name)} (a folder with no files)" for name in extra]


def verify(folder: Path, public_key_pem: bytes | None) -> list[str]:
    """What differs from what was signed, under the trusted public key; empty when the folder is untouched.

    Without a public key (only its fingerprint is trusted and the folder offers no key with it), the
    signature cannot be checked, which is itself a problem. Never raises for a tampered folder;
    `ConfigError` only when `public_key_pem` is not an Ed25519 PEM public key.
    """
    public_key = load_public_key(public_key_pem) if public_key_pem is not None else None
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    manifest, signature = _read(folder / MANIFEST), _read(folder / SIGNATURE)
    if manifest is None:
        return [f"{MANIFEST} is missing"] + ([f"{SIGNATURE} is missing"] if signature is None else [])
    digests, problems = _parse(manifest)
    if public_key is None:
        problems.append(f"{SIGNATURE} cannot be checked: no public key with the trusted fingerprint")
    else:
        problems += _signature_problems(manifest, signature, public_key, fingerprint(public_key_pem))
    return problems + _file_problems(folder, digests)


def private_key(env: Environment) -> bytes | None:
    """The environment's signing key (PEM), resolved from its reference; None when it signs nothing."""
    return expand(env.signing.private_key).encode() if env.signing and env.signing.private_key else None


def identity(private_key_pem: bytes) -> dict:
    """The public key and fingerprint a record shows, so a reader knows which key vouches for it."""
    public = public_pem(load_private_key(private_key_pem))
    return {"public_key": public.decode(), "fingerprint": fingerprint(public)}

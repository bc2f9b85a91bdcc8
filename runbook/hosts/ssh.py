"""The ssh client config `ssh://` hosts are reached with, rendered from the environment's `ssh` section.

    >>> config_file(env.ssh)
    PosixPath('/root/.cache/runbook/ssh/3f2a9c0d1e7b5a64.conf')

testinfra, rsync and the runbook's own ssh calls all use it (`ssh -F <file>`): ssh never prompts, host
keys are checked against `known_hosts` (a changed key is always refused), and one connection per host
is reused for `control_persist_seconds`. The file is private (0600 in a 0700 folder of the user's cache)
and named by its content. The connections' sockets are in a private folder under /tmp (a unix socket's
path must stay under 104 bytes), named by their settings too: a connection made with other settings
(another known_hosts) is never reused.
"""

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from runbook.config import Ssh
from runbook.errors import RunbookError

SOCKETS = Path(f"/tmp/runbook-ssh-{os.getuid()}")


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runbook" / "ssh"


def _private_folder(folder: Path) -> Path:
    """`folder`, made 0700 if missing; refused when someone else owns it or may write in it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or found.st_mode & 0o077:
        raise RunbookError(f"{folder} must be a folder of user {os.getuid()} that only they may open (mode 0700)")
    return folder


def _quoted(path: Path) -> str:
    """A path as an ssh_config argument: quoted, `%` kept literal."""
    return '"' + str(path).replace("%", "%%") + '"'


def render(settings: Ssh) -> str:
    """The ssh client config for these settings."""
    options = [
        "BatchMode yes",
        f"StrictHostKeyChecking {'yes' if settings.strict_host_key_checking else 'accept-new'}",
        f"UserKnownHostsFile {_quoted(settings.known_hosts)}",
    ]
    if settings.identity_file:
        options += [f"IdentityFile {_quoted(settings.identity_file)}", "IdentitiesOnly yes"]
    if settings.user:
        options.append(f"User {settings.user}")
    if settings.connect_timeout:
        options.append(f"ConnectTimeout {settings.connect_timeout}")
    options += [
        "ServerAliveInterval 15",
        "ServerAliveCountMax 3",
        "LogLevel ERROR",
        "ControlMaster auto",
        f"ControlPersist {settings.control_persist_seconds}",
    ]
    scope = hashlib.sha256("\n".join(options).encode()).hexdigest()[:8]
    options.append(f"ControlPath {SOCKETS}/{scope}-%C")
    return "# Written by the runbook from an environment's ssh settings; named by its content.\nHost *\n" + "".join(
        f"  {option}\n" for option in options
    )


def config_file(settings: Ssh) -> Path:
    """The private file holding `render(settings)`, written when missing; the sockets' folder made."""
    text = render(settings)
    _private_folder(SOCKETS)
    path = _private_folder(_cache()) / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.conf"
    if not path.exists():
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".conf")  # mode 0600
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(temp, path)
    return path


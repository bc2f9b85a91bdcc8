"""The sshd of a plain fleet host (`fleet.py`): its keys, its config, started in the host's network namespace
with a mount and UTS namespace of its own (its own `COMMON` and hostname), and waited for."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests import netns
from tests.netns import COMMON

if TYPE_CHECKING:
    from tests.fleet import FleetHost

SSHD = "/usr/sbin/sshd"


def keygen(path: Path, comment: str) -> None:
    netns.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))



def configure(host: FleetHost, authorized_keys: Path) -> Path:
    """The host's sshd_config: root by the client's key only, on the host's address."""
    config = host.folder / "sshd_config"
    config.write_text("\n".join([
        f"# sshd of test host {host.name} in network namespace {host.namespace}",
        f"ListenAddress {host.address}:22",
        f'HostKey "{host.host_key}"',
        f'PidFile "{host.folder / "sshd.pid"}"',
        "PermitRootLogin prohibit-password",
        "AllowUsers root",
        "PubkeyAuthentication yes",
        f'AuthorizedKeysFile "{authorized_keys}"',
        # The keys live in a test folder under /tmp (world-writable), which StrictModes would refuse.
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "X11Forwarding no",
        "PrintMotd no",
        "MaxSessions 50",
        "MaxStartups 100:30:200",
        "Subsystem sftp internal-sftp",
        "",
    ]))
    return config


def start(host: FleetHost, config: Path) -> None:
    """sshd in the host's namespace, in a private mount (its own COMMON) and UTS (its own hostname)
    namespace of its own."""
    script = ('set -e; mount --bind "$1" "$2"; hostname "$3"; '
              # A fresh server's root has no shell setup of this machine's developers (pyenv init in
              # /root/.bashrc costs every command 0.2 s): hide it from the host's sessions only.
              'if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi; '
              f'exec {SSHD} -D -f "$4" -E "$5"')
    log = host.folder / "sshd.log"
    with open(host.folder / "start.log", "wb") as start:
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "unshare", "--mount", "--uts", "--propagation", "private",
             "sh", "-c", script, "sshd", str(host.root), str(COMMON), host.name, str(config), str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=start, start_new_session=True,
            env=netns.ENV)


def wait(host: FleetHost) -> None:
    """Until the host's sshd greets on port 22 (15 s at most); `RuntimeError` with its logs if it exited."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if host.sshd.poll() is not None:
            logs = [(host.folder / n).read_text(errors="replace") for n in ("start.log", "sshd.log")
                    if (host.folder / n).exists()]
            raise RuntimeError(f"sshd of {host.name} exited {host.sshd.returncode}: {' '.join(logs).strip()}")
        with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=1) as conn:
            conn.settimeout(2)
            if conn.recv(64).startswith(b"SSH-"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd of {host.name} did not answer on {host.address}:22")

"""The Debian root the systemd test hosts boot: `debootstrap --variant=minbase` (`PACKAGES`) made once under the
project's gitignored state folder (`CACHE`, with a stamp naming the suite, mirror and packages; a second run
reuses it; building it holds a lock so that two test workers never build it at once), and the rule that
nothing else is ever booted (`check_bootable`).

Never boot systemd on the machine's own root filesystem (DESIGN.md): at boot it empties /tmp for every
process on the machine and starts the machine's own units.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from tests import netns

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local"
"""The project's gitignored state folder: every root booted here lives under it."""
CACHE = STATE / "cache" / "debian-root"
STAMP = ".runbook-debian-root"
"""The file in a made root naming what it was made from; a root without it is never booted."""

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "sudo", "procps", "rsync",
            "postgresql-client")
"""What the hosts need besides systemd and sshd: rsync receives the packages, postgresql-client is pg_dump
and pg_restore on the backup host."""
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT = 900
"""Seconds debootstrap may take (about a minute here, more on a slow mirror)."""


class Refused(RuntimeError):
    """A directory that must not be booted."""


def mirror(sources: Path = SOURCES) -> str:
    """The Debian mirror this machine's apt uses (its first `URIs:`), else deb.debian.org."""
    with contextlib.suppress(OSError):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return DEFAULT_MIRROR


def stamp_text(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES, source: str | None = None) -> str:
    return f"suite={suite}\nvariant=minbase\nmirror={source or mirror()}\npackages={','.join(packages)}\n"


def debootstrap_command(target: Path, suite: str = SUITE, packages: tuple[str, ...] = PACKAGES,
                        source: str | None = None) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(target),
            source or mirror()]


def check_bootable(directory: Path, state: Path = STATE) -> Path:
    """`directory` resolved, when it is a root this module may boot; else Refused saying why."""
    resolved = Path(os.path.realpath(directory))
    if resolved == Path("/") or (resolved.exists() and os.path.samefile(resolved, "/")):
        raise Refused(f"refusing to boot systemd on the machine's own root filesystem ({directory} is /)")
    state = Path(os.path.realpath(state))
    if not resolved.is_relative_to(state) or resolved == state:
        raise Refused(f"refusing to boot {directory}: it is not under the state folder {state}")
    if not (resolved / STAMP).is_file():
        raise Refused(f"refusing to boot {directory}: it is not a root made by debootstrap here (no {STAMP})")
    return resolved


def _mounts_under(path: Path) -> list[str]:
    """The mount points at or under `path`, deepest first (/proc/self/mounts escapes spaces as \\040)."""
    points = [line.split()[1].replace("\\040", " ") for line in Path("/proc/self/mounts").read_text().splitlines()]
    return sorted((p for p in points if Path(p).is_relative_to(path)), key=len, reverse=True)


def remove(path: Path) -> None:
    """Remove a folder of ours after unmounting what is mounted in it (a stopped debootstrap leaves /proc
    and /sys mounted in its target): never delete through a mount."""
    for point in _mounts_under(Path(os.path.realpath(path))):
        netns.run("umount", point, check=False)
    left = _mounts_under(Path(os.path.realpath(path)))
    if left:
        raise RuntimeError(f"cannot remove {path}: still mounted there: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def cached(cache: Path = CACHE, packages: tuple[str, ...] = PACKAGES) -> Path:
    """The cached Debian root, made by debootstrap unless a root of the same stamp is there already."""
    wanted = stamp_text(packages=packages)
    stamp = cache / STAMP
    if stamp.is_file() and stamp.read_text() == wanted:
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f"{cache.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == wanted:
            return cache  # another worker made it while this one waited
        building = cache.parent / f"{cache.name}.building"
        remove(building)
        remove(cache)
        result = subprocess.run(debootstrap_command(building, packages=packages), capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL, env=netns.ENV)
        if result.returncode != 0:
            log = building / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr[-2000:]
            raise RuntimeError(f"debootstrap exited {result.returncode}: {detail.strip()}")
        # Each host gets its own machine id, host key and hostname at boot, not the cache's.
        (building / "etc" / "machine-id").write_text("")
        for key in (building / "etc" / "ssh").glob("ssh_host_*"):
            key.unlink()
        (building / STAMP).write_text(wanted)
        building.rename(cache)
    return cache

"""Real systemd test hosts: a network namespace whose PID 1 is `/lib/systemd/systemd`, booted by
`systemd-nspawn` on a root filesystem of its own, with sshd and journald, reached over ssh.

    with systemd_hosts(1, tmp_path) as hosts:
        hosts.ssh(hosts[0], "systemctl is-system-running")

Each host boots on an overlay of the cached minimal Debian root (`rootfs.py`), its own upper dir under the
state folder, so the cache stays clean. Its network is a fleet host's (`fleet.py`): nspawn joins the
namespace of the host's veth link, so the runner reaches its sshd at the host's address.

Never boot systemd on the machine's own root filesystem (DESIGN.md): `boot_directory` refuses any
directory that is `/`, is not under the state folder, or is not a root made by `rootfs`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import fleet as fleet_hosts
from tests import netns, rootfs, sshd
from tests.rootfs import ROOT, STATE

NSPAWN = "systemd-nspawn"
BOOT_TIMEOUT = 60
"""Seconds from starting nspawn to sshd answering and systemd saying running or degraded."""
STOP_TIMEOUT = 20
"""Seconds a host may take to power off before its processes are killed."""


def project_binds() -> tuple[Path, ...]:
    """What a host needs to run the project's code from the runner's virtualenv at the same paths
    (bind-mounted read-only instead of installed): the venv, the Python it was made from, and the
    folders its editable install and the demo's services are in."""
    return tuple(dict.fromkeys(Path(p) for p in (sys.base_prefix, sys.prefix, ROOT / "runbook", ROOT / "demo")))


Share = tuple[Path, Path]
"""A folder of this machine (first) that every host sees, writable, at a path of its own (second)."""


def nspawn_command(directory: Path, namespace: str, hostname: str, binds: tuple[Path, ...] = (),
                   shares: tuple[Share, ...] = ()) -> list[str]:
    """Boot `directory` in the network namespace `namespace`, `binds` mounted read-only at their own paths,
    `shares` writable. `--register=no --keep-unit`: this machine has no system bus (no systemd as PID 1)
    to register with."""
    return [NSPAWN, f"--directory={directory}", "--boot", "--register=no", "--keep-unit",
            f"--network-namespace-path=/run/netns/{namespace}", f"--hostname={hostname}",
            *(f"--bind-ro={path}" for path in binds), *(f"--bind={source}:{target}" for source, target in shares),
            "--console=pipe", "--quiet"]


def missing() -> str | None:
    """None when this machine can boot systemd hosts, else what it lacks (tests/prerequisites.require)."""
    for tool in ("debootstrap", NSPAWN, "mount"):
        if not shutil.which(tool, path=netns.PATH):
            return f"{tool} is not installed (Debian packages debootstrap, systemd-container)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    return fleet_hosts.can_make_namespaces()


def sshd_config_text() -> str:
    """The host's sshd settings, ahead of Debian's own (its sshd_config includes sshd_config.d first)."""
    return "\n".join([
        "# a runbook systemd test host: root by key only, with the key made for this host",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PrintMotd no",
        "MaxSessions 50",
        "",
    ])


def _pid_namespace(pid: int) -> tuple[int, int]:
    info = os.stat(f"/proc/{pid}/ns/pid")
    return info.st_dev, info.st_ino


def processes_in(pid_namespace: tuple[int, int]) -> list[int]:
    """The processes of a PID namespace (a booted host's, before and after teardown)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if _pid_namespace(int(entry.name)) == pid_namespace:
                    found.append(int(entry.name))
    return found


class SystemdHost(fleet_hosts.FleetHost):
    """A fleet host whose network namespace runs systemd-nspawn (`sshd` is the nspawn process)."""

    pid_namespace: tuple[int, int] | None = None
    """The (device, inode) of its PID namespace once booted: the one of nspawn's child, its systemd."""

    @property
    def state(self) -> Path:
        """Its overlay: `lower` is the cached root, `upper`/`work` its own changes, `merged` its root."""
        return self.root.parent

    @property
    def merged(self) -> Path:
        return self.state / "merged"


def _install(host: SystemdHost, client_key: Path) -> None:
    """Give the host's root its hostname, a host key of its own and the client's key for root."""
    etc = host.merged / "etc"
    (etc / "hostname").write_text(f"{host.name}\n")
    sshd.keygen(host.host_key, f"runbook-systemd-{host.name}")
    for suffix, mode in (("", 0o600), (".pub", 0o644)):
        target = etc / "ssh" / f"ssh_host_ed25519_key{suffix}"
        shutil.copyfile(f"{host.host_key}{suffix}", target)
        target.chmod(mode)
    (etc / "ssh" / "sshd_config.d" / "runbook.conf").write_text(sshd_config_text())
    dot_ssh = host.merged / "root" / ".ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    (dot_ssh / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    (dot_ssh / "authorized_keys").chmod(0o600)


def _mount(host: SystemdHost, lower: Path) -> None:
    for part in ("upper", "work", "merged"):
        (host.state / part).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={lower},upperdir={host.state / 'upper'},workdir={host.state / 'work'}"
    netns.run("mount", "-t", "overlay", "overlay", "-o", options, str(host.merged))


def tracking_hierarchies(mounts: str | None = None) -> list[Path]:
    """Where this machine mounts the cgroup hierarchies systemd tracks a unit's processes in: the cgroup2
    one and, on a hybrid layout (this machine's), the v1 `name=systemd` one."""
    found = []
    for line in (mounts if mounts is not None else Path("/proc/self/mounts").read_text()).splitlines():
        _, point, kind, options = line.split()[:4]
        if kind == "cgroup2" or (kind == "cgroup" and "name=systemd" in options.split(",")):
            found.append(Path(point))
    return found


def own_cgroups(host: SystemdHost) -> list[Path]:
    """A cgroup of the host's own in each tracking hierarchy, for its nspawn and everything under it.

    Without it every host's nspawn (`--keep-unit`, no systemd on this machine to make it a scope) stays
    in the caller's cgroup, so the hosts' systemds all manage the same `system.slice/web.service`: one
    host's stop of a unit killed the processes of another's ("Failed to kill control group ...:
    Input/output error"), and the next start on the other host failed with status=219/CGROUP.
    """
    return [point / "runbook-systemd-hosts" / host.namespace for point in tracking_hierarchies()]


def _remove_cgroups(host: SystemdHost) -> None:
    """Remove the host's cgroups, deepest first (its systemd's slices and units under them): once its
    processes are gone they are empty, and an empty cgroup is removed with rmdir."""
    for group in own_cgroups(host):
        for folder, _, _ in sorted(os.walk(group), key=lambda entry: len(entry[0]), reverse=True):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(folder)


def boot_directory(host: SystemdHost, binds: tuple[Path, ...] = (), shares: tuple[Share, ...] = ()) -> None:
    """Start systemd-nspawn on the host's root, in its network namespace and cgroups of its own (refused
    unless bootable)."""
    directory = rootfs.check_bootable(host.merged)
    Path("/run/systemd/nspawn/propagate").mkdir(parents=True, exist_ok=True)
    groups = own_cgroups(host)
    for group in groups:
        group.mkdir(parents=True, exist_ok=True)

    def enter() -> None:  # in the child, before nspawn runs
        for group in groups:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    with open(host.folder / "start.log", "wb") as log:
        host.sshd = subprocess.Popen(nspawn_command(directory, host.namespace, host.name, binds, shares),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=netns.ENV, preexec_fn=enter)


def _wait_until_running(hosts: fleet_hosts.Fleet, host: SystemdHost, deadline: float) -> str:
    """Wait for sshd, then for `systemctl is-system-running` to say running or degraded; what it said."""
    said = "no answer"
    while time.monotonic() < deadline:
        if host.sshd.poll() is not None:
            log = (host.folder / "start.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"systemd-nspawn of {host.name} exited {host.sshd.returncode}: {log.strip()}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            result = hosts.ssh(host, "systemctl is-system-running", timeout=max(1.0, deadline - time.monotonic()))
            said = (result.stdout.strip() or result.stderr.strip())
            if said in ("running", "degraded"):
                children = Path(f"/proc/{host.sshd.pid}/task/{host.sshd.pid}/children").read_text().split()
                host.pid_namespace = _pid_namespace(int(children[0]))
                return said
        time.sleep(0.5)
    raise RuntimeError(f"{host.name} did not boot within {BOOT_TIMEOUT} s: systemctl is-system-running said "
                       f"{said!r}; see {host.folder / 'start.log'}")


def _power_off(host: SystemdHost) -> None:
    """SIGTERM to nspawn powers the host off (systemd's SIGRTMIN+3); a host that hangs is killed."""
    if host.sshd is None or host.sshd.poll() is not None:
        return
    host.sshd.terminate()
    try:
        host.sshd.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(host.sshd.pid, signal.SIGKILL)
        host.sshd.wait(5)


def _teardown(hosts: fleet_hosts.Fleet) -> list[str]:
    problems = []
    for host in hosts.hosts:
        try:
            _power_off(host)
        except Exception as error:  # go on with the rest of the teardown
            problems.append(f"powering off {host.name}: {error}")
    problems += fleet_hosts.teardown(hosts)
    for host in hosts.hosts:
        for pid in processes_in(host.pid_namespace) if host.pid_namespace else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            _remove_cgroups(host)
        except OSError as error:
            problems.append(f"removing the cgroups of {host.name}: {error}")
        try:
            rootfs.remove(host.state)
        except RuntimeError as error:
            problems.append(str(error))
    return problems


@contextlib.contextmanager
def systemd_hosts(count: int, folder: Path, forward: tuple[int, ...] = (), binds: tuple[Path, ...] = (),
                  shares: tuple[Share, ...] = (), state: Path = STATE):
    """`count` booted systemd hosts (a `tests.fleet.Fleet` of `SystemdHost`s), powered off and removed on exit.

    `folder` keeps the keys and the ssh config as for `tests.fleet.fleet`; each host's overlay is under
    `state`/systemd-hosts. `forward`: as for `tests.fleet.fleet`, the machine's ports reached at
    `hosts.shared_address`. `binds`: runner paths each host sees read-only (e.g. `project_binds()`);
    `shares`: runner folders every host sees writable (storage the hosts share, as an NFS mount).
    """
    if count < 1:
        raise ValueError("a fleet has at least one host")
    lower = rootfs.cached()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    made = fleet_hosts.Fleet(folder, Path(tempfile.mkdtemp(prefix="rbs", dir="/tmp")))
    with fleet_hosts.held(made, _teardown, "systemd hosts teardown"):
        sshd.keygen(made.client_key, "runbook-systemd-client")
        overlays = state / "systemd-hosts"
        made.reserve(count, "rbs", SystemdHost, lambda token, name: overlays / f"{token}-{name}" / "merged", bool(forward))
        for host in made.hosts:
            host.folder.mkdir(parents=True, exist_ok=True)
            _mount(host, lower)
            _install(host, made.client_key)
            boot_directory(host, binds, shares)
        made.admit(forward)
        deadline = time.monotonic() + BOOT_TIMEOUT
        for host in made.hosts:
            _wait_until_running(made, host, deadline)
        yield made

"""Hosts as testinfra hosts: one connection abstraction for checks and actions alike.

    >>> host = connect(env.hosts[0])
    >>> facts(host, ["/"]).cpus
    2
"""

import contextvars
import os
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Callable, TypeVar

import testinfra
from testinfra.backend.base import CommandResult

from runbook.hosts import commands, deadline, ssh
from runbook.config import Host
from runbook.config.hosts import FORKS
from runbook.config.deadlines import Kind
from runbook.errors import ActionFailed, DeadlineExceeded, RunbookError
from runbook.secrets import redact

T = TypeVar("T")
I = TypeVar("I")

TRANSFER_TIMEOUT = 60
"""Seconds a file sent to a host may make no progress before the transfer is given up."""

def connect(host: Host):
    """The testinfra host for an environment's host; ssh never prompts and gives up after the timeout.

    `ssh://` goes through the environment's ssh config (`runbook/ssh.py`): host keys checked, one
    connection reused; the host's `connect_timeout` is the one that applies.
    """
    if host.spec.startswith("ssh://"):
        remote = testinfra.get_host(host.spec, ssh_config=str(ssh.config_file(host.ssh)),
                                    timeout=host.connect_timeout, controlpersist=host.ssh.control_persist_seconds)
    else:
        remote = testinfra.get_host(host.spec, timeout=host.connect_timeout, ssh_extra_args="-o BatchMode=yes")
    return deadline.bound(remote, host)


def _ssh(host: Host) -> tuple[list[str], str]:
    """The ssh client's arguments for an `ssh://` host up to its name, and the name: the options testinfra
    gives it, so that both share one connection."""
    spec = connect(host).backend.host
    argv = ["ssh", "-F", str(ssh.config_file(host.ssh)), "-o", f"ConnectTimeout={host.connect_timeout}"]
    if spec.user:
        argv += ["-o", f"User={spec.user}"]
    if spec.port:
        argv += ["-o", f"Port={spec.port}"]
    return argv, spec.name


def run(host: Host, *argv: str, kind: Kind | None = None, shown: list[str] | None = None):
    """Run an argument list on the host, every argument quoted, under its deadline: that of its `kind`,
    else the phase's, else `deadlines.command`. At the deadline the command is stopped on the host itself
    and `DeadlineExceeded` names the host, the command (`shown`, else `argv`) and the deadline."""
    name, seconds = host.deadlines.for_command(kind, deadline.PHASE.get())
    started = time.monotonic()
    result = connect(host).run(shlex.join(commands.bounded(seconds, list(argv))))
    if result.rc in commands.EXPIRED and time.monotonic() - started >= seconds:
        raise DeadlineExceeded(f"host {host.name}: `{_first_words(shown or list(argv))}` did not finish within "
                               f"{seconds} s (deadline {name}); it was stopped")
    return result


def _first_words(argv: list[str], count: int = 6) -> str:
    argv = commands.without_env(argv)
    return redact(shlex.join(argv[:count])) + (" ..." if len(argv) > count else "")


def script(host: Host, text: str, *args: str):
    """Run a POSIX shell script on the host with `args` as "$1", "$2", ...; one round trip."""
    return run(host, *commands.shell(text, *args))


def each(items: list[I], check: Callable[[I], T]) -> list[T]:
    """Run `check` on every host (or host and service, ...) concurrently, at most `ssh.forks` at once (the
    smallest of the items' hosts'), results in order."""
    if not items:
        return []
    contexts = [contextvars.copy_context() for _ in items]  # each in the caller's phase (a copy per thread)
    forks = min((h.ssh.forks for h in map(_host, items) if h is not None), default=FORKS)
    with ThreadPoolExecutor(max_workers=min(forks, len(items))) as pool:
        return list(pool.map(lambda context, item: context.run(check, item), contexts, items))


def _host(item: object) -> Host | None:
    """The host an item of `each` is about: a host, or the first host in a tuple (host, service)."""
    if isinstance(item, Host):
        return item
    return next((part for part in item if isinstance(part, Host)), None) if isinstance(item, tuple) else None


class Unreachable(Exception):
    """The host did not answer; the message says why (timeout, refused, auth)."""


def _reason(result) -> str:
    return _last_line(result.stderr or result.stdout or "", result.rc)


def _last_line(text: str, code: int) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else f"exit code {code}"


def _reached(host: Host, text: str, *args: str):
    """Run a script that must succeed; `Unreachable` with ssh's own reason when the host did not answer."""
    try:
        result = script(host, text, *args)
    except Exception as e:  # ssh failed (testinfra raises with its result), or a backend that cannot start
        failed = e.args[0] if e.args else None
        raise Unreachable(_reason(failed) if isinstance(failed, CommandResult) else str(e)) from None
    if result.rc != 0:
        raise Unreachable(_reason(result))
    return result


WRITE = ('set -e; umask 077; tmp="$1.runbook-$$"; trap \'rm -f -- "$tmp"\' EXIT; cat > "$tmp"; '
         'chmod -- "$2" "$tmp"; sync -- "$tmp"; if [ "$3" = exclusive ]; then ln -- "$tmp" "$1" 2>/dev/null || exit 17; '
         'else mv -f -- "$tmp" "$1"; fi')
"""Writes standard input to "$1" with mode "$2", flushed to disk beside it first, then renamed over it;
with "$3" = exclusive it is linked in instead, and exit code 17 says "$1" exists already."""
EXISTS = 17


def put(host: Host, path: str, data: bytes, mode: int, exclusive: bool = False) -> bool:
    """Write a file on the host with `mode`, whole or not at all (written and flushed beside it, then
    renamed over it). `exclusive`: only if it does not exist yet (False then, nothing written).

    The content (config files hold passwords) never appears in a command line: on `local://` the engine
    writes it itself, over `ssh://` it goes on ssh's standard input.
    """
    kind = connect(host).backend.get_connection_type()
    if kind == "local":
        return _put_here(path, data, mode, exclusive)
    if kind != "ssh":
        raise RunbookError(f"host {host.name}: files are written over ssh:// or local:// only, not {host.spec}")
    argv, name = _ssh(host)
    remote = shlex.join(commands.shell(WRITE, path, f"{mode:04o}", "exclusive" if exclusive else "replace"))
    try:
        result = subprocess.run([*argv, name, remote], input=data, capture_output=True,
                                timeout=host.connect_timeout + TRANSFER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"host {host.name}: writing {path} did not finish within "
                           f"{host.connect_timeout + TRANSFER_TIMEOUT} s") from None
    if exclusive and result.returncode == EXISTS:
        return False
    if result.returncode != 0:
        reason = _last_line(result.stderr.decode(errors="replace"), result.returncode)
        raise RunbookError(f"host {host.name}: cannot write {path}: {reason}")
    return True


def _put_here(path: str, data: bytes, mode: int, exclusive: bool) -> bool:
    temp = f"{path}.runbook-{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(temp, path)
        return True
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)


def copy(host: Host, source: Path, destination: str) -> None:
    """Copy a local file to the path `destination` on the host, its folder created; whole or not at all.

    Over `ssh://` it is rsync through the environment's ssh config, on the checks' own connection.
    """
    kind = connect(host).backend.get_connection_type()
    if kind == "local":
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.runbook-{os.getpid()}")
        shutil.copy2(source, temp)
        os.replace(temp, target)
        return
    if kind != "ssh":
        raise RunbookError(f"host {host.name}: files are copied over ssh:// or local:// only, not {host.spec}")
    folder = str(PurePosixPath(destination).parent)
    succeeded(host, run(host, *commands.make_folders(folder)), what=f"creating {folder}")
    argv, name = _ssh(host)
    seconds = host.deadlines.transfer
    try:
        result = subprocess.run(
            ["rsync", "--times", f"--timeout={TRANSFER_TIMEOUT}", "-e", shlex.join(argv), "--", str(source),
             f"{name}:{destination}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        raise DeadlineExceeded(f"host {host.name}: copying {source} to {destination} did not finish within "
                               f"{seconds} s (deadline transfer); it was stopped") from None
    if result.returncode != 0:  # rsync's first line says why, its last one only its exit code
        reason = result.stderr.strip().splitlines() or [f"rsync exit code {result.returncode}"]
        raise ActionFailed(f"host {host.name}: copying {source} to {destination} failed: {reason[0]}")


def read(host: Host, path: str) -> str | None:
    """A file's text on the host; None when it does not exist."""
    result = script(host, 'if [ -e "$1" ]; then cat -- "$1"; else exit 3; fi', path)
    if result.rc == 3:
        return None
    if result.rc != 0:
        raise RunbookError(f"host {host.name}: cannot read {path}: {_reason(result)}")
    return result.stdout


def succeeded(host: Host, result: CommandResult, what: str) -> str:
    """The output of a command that had to succeed; `ActionFailed` naming the host, what was done and why
    it failed."""
    if result.rc != 0:
        raise ActionFailed(f"host {host.name}: {what} failed: {_reason(result)}")
    return result.stdout


def must(host: Host, text: str, *args: str, what: str) -> str:
    """Run a script that must succeed (see `succeeded`); argument lists go through `runbook.hosts.runner`."""
    return succeeded(host, script(host, text, *args), what)

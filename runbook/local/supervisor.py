"""The local environment's supervisord: the app's services (started by deploys) and the programs of
the local stack (started with supervisord)."""

import http.client
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import jinja2

from runbook.config import Environment
from runbook.errors import RunbookError
from runbook.local.paths import Paths, run

SUPERVISORD_CONF = jinja2.Template(
    """\
; written by runbook for the local environment {{ env.name }}; changes are overwritten
[unix_http_server]
file={{ sup }}/supervisor.sock
chmod=0700

[supervisord]
logfile={{ sup }}/supervisord.log
pidfile={{ sup }}/supervisord.pid
childlogdir={{ sup }}/logs
directory={{ state }}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{{ sup }}/supervisor.sock
{% for program in programs %}
[program:{{ program.name }}]
command={{ program.command }}
directory={{ program.directory }}
autostart={{ program.autostart | lower }}
autorestart=true
startsecs=2
stopwaitsecs=15
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={{ sup }}/logs/{{ program.name }}.log
{% endfor %}
""",
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Program:
    """A supervisord program: an app service (`autostart` false: a deploy starts it on its release)
    or a process of the local stack (started with supervisord)."""

    name: str
    command: str
    directory: Path
    autostart: bool = True
    listens: tuple[str, int] | None = None
    """The address it accepts connections on once started: `up` returns only when it does."""


def await_listening(p: Paths, programs: list[Program], seconds: float) -> None:
    """Return once every started program with an address accepts connections on it (a supervisord that has
    just started a program says RUNNING before the program listens); a clear error naming the program and
    its log when one has not within `seconds` or has stopped trying."""
    waiting = [prog for prog in programs if prog.autostart and prog.listens is not None]
    deadline = time.monotonic() + seconds
    while True:
        waiting = [prog for prog in waiting if not _accepts(prog.listens)]
        if not waiting:
            return
        listed = status(p) or {}
        given_up = [prog for prog in waiting if listed.get(prog.name) in ("FATAL", "EXITED", "STOPPED")]
        late = given_up or (waiting if time.monotonic() > deadline else [])
        if late:
            prog = late[0]
            host, port = prog.listens
            said = (f"is {listed[prog.name]}, not listening on {host}:{port}" if given_up
                    else f"did not listen on {host}:{port} within {seconds:g} s")
            raise RunbookError(f"the local stack's {prog.name} {said} (log: {p.supervisor / 'logs' / f'{prog.name}.log'})")
        time.sleep(0.1)


def _accepts(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def venv_bin() -> Path:
    return Path(sys.executable).parent


def supervisorctl(p: Paths, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [str(venv_bin() / "supervisorctl"), "-c", str(p.supervisord_conf), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def running(p: Paths) -> bool:
    return status(p) is not None


SHUTTING_DOWN = 6
"""supervisord's fault code while it shuts down (`SHUTDOWN_STATE`): as good as stopped."""


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over supervisord's unix socket, with a deadline on connecting and on every read."""

    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: Path, timeout: float):
        super().__init__()
        self.path, self.timeout = path, timeout

    def make_connection(self, host):
        return _UnixConnection(self.path, self.timeout)


def status(p: Paths, timeout: float = 30) -> dict[str, str] | None:
    """Each program's state (RUNNING, STOPPED, ...) by name, asked of supervisord over its socket in one
    XML-RPC call (what `supervisorctl status` asks, without starting a Python for it); None when no
    supervisord answers. One call says both that supervisord runs and what each program does."""
    sock = p.supervisor / "supervisor.sock"
    if not (p.supervisord_conf.exists() and sock.exists()):
        return None
    proxy = xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(sock, timeout))
    try:
        found = proxy.supervisor.getAllProcessInfo()
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except xmlrpc.client.Fault as e:
        if e.faultCode == SHUTTING_DOWN:
            return None
        raise RunbookError(f"supervisord at {sock} refused its status: {e}") from None
    except (OSError, xmlrpc.client.Error) as e:
        raise RunbookError(f"supervisord at {sock} did not answer: {e} (log: {p.supervisor / 'supervisord.log'})") from None
    return {info["name"]: info["statename"] for info in found}


def services(env: Environment) -> list[Program]:
    """The app's supervisord services, their commands rendered for the current release."""
    return [
        Program(s.name, jinja2.Template(s.command, undefined=jinja2.StrictUndefined).render(
            current=env.app.current, bin=venv_bin(), root=env.app.root), env.app.current, autostart=False)
        for s in env.services if s.manager == "supervisord"
    ]


def up(env: Environment, p: Paths, programs: list[Program]) -> tuple[list[str], dict[str, str]]:
    """Write supervisord's configuration for `programs` and start it, or have it take up a change.
    Returns what was done and each program's state: when all was up, that one `status` is all it costs."""
    (p.supervisor / "logs").mkdir(parents=True, exist_ok=True)
    text = SUPERVISORD_CONF.render(env=env, sup=p.supervisor, state=p.state, programs=programs)
    changed = not p.supervisord_conf.exists() or p.supervisord_conf.read_text() != text
    if changed:
        p.supervisord_conf.write_text(text)
        p.supervisord_conf.chmod(0o600)
    listed = status(p)
    if listed is None:
        run([str(venv_bin() / "supervisord"), "-c", str(p.supervisord_conf)], "starting supervisord")
        for _ in range(100):
            listed = status(p)
            if listed is not None:
                return ["started supervisord"], listed
            time.sleep(0.1)
        raise RunbookError(f"supervisord did not come up (log: {p.supervisor / 'supervisord.log'})")
    if changed:
        supervisorctl(p, "update")
        return ["updated supervisord's programs"], status(p) or {}
    return [], listed

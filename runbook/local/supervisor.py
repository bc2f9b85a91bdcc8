"""The local environment's supervisord: the app's services (started by deploys) and the programs of
the local stack (started with supervisord)."""

import subprocess
import sys
import time
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


def venv_bin() -> Path:
    return Path(sys.executable).parent


def supervisorctl(p: Paths, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [str(venv_bin() / "supervisorctl"), "-c", str(p.supervisord_conf), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def running(p: Paths) -> bool:
    return status(p) is not None


def status(p: Paths) -> str | None:
    """`supervisorctl status`, one line per program; None when no supervisord answers. One call both
    says that supervisord runs and what each program does (exit 3: some program is not running)."""
    if not p.supervisord_conf.exists():
        return None
    try:
        listed = supervisorctl(p, "status", timeout=30)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"supervisorctl status: no answer within 30 s (log: {p.supervisor / 'supervisord.log'})") from None
    return listed.stdout if listed.returncode in (0, 3) else None


def services(env: Environment) -> list[Program]:
    """The app's supervisord services, their commands rendered for the current release."""
    return [
        Program(s.name, jinja2.Template(s.command, undefined=jinja2.StrictUndefined).render(
            current=env.app.current, bin=venv_bin(), root=env.app.root), env.app.current, autostart=False)
        for s in env.services if s.manager == "supervisord"
    ]


def up(env: Environment, p: Paths, programs: list[Program]) -> tuple[list[str], str]:
    """Write supervisord's configuration for `programs` and start it, or have it take up a change.
    Returns what was done and `supervisorctl status`: when all was up, that one call is all it costs."""
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
        return ["updated supervisord's programs"], status(p) or ""
    return [], listed

"""The app's services, stopped, started and checked through the environment's service manager:
systemd (`systemctl`) on real hosts, supervisord where there is no systemd (the local environment).
"""

import sys
from pathlib import Path

from runbook.hosts import connection
from runbook import local
from runbook.config import Environment, Host, Service
from runbook.errors import ActionFailed
from runbook.findings import Finding


def _supervisor(env: Environment) -> tuple[str, str]:
    """supervisorctl and the config it reads: the local environment's own, or the configured one."""
    if env.local is not None:
        return str(Path(sys.executable).parent / "supervisorctl"), str(local.paths(env).supervisord_conf)
    return env.supervisor.ctl, str(env.supervisor.config)


def pid_command(env: Environment, service: Service) -> list[str]:
    """The argument list that prints the service's main process id on a host (0 when it is not running)."""
    if service.manager == "systemd":
        return ["systemctl", "show", "-p", "MainPID", "--value", service.name]
    ctl, conf = _supervisor(env)
    return [ctl, "-c", conf, "pid", service.name]


def placements(env: Environment) -> list[tuple[Host, Service]]:
    """Every (host, service) pair: each service on each host with one of its roles."""
    return [(h, s) for s in env.services for h in env.hosts_with_any(s.roles)]


def control(env: Environment, host: Host, service: Service, action: str) -> str:
    """`start` or `stop` one service on one host; `ActionFailed` with the manager's words if it refuses."""
    if service.manager == "systemd":
        argv = ["systemctl", action, service.name]
    else:
        ctl, conf = _supervisor(env)
        argv = [ctl, "-c", conf, action, service.name]
    result = connection.script(host, '"$@" 2>&1', *argv)
    out = result.stdout.strip()
    if "(not running)" in out and action == "stop" or "(already started)" in out and action == "start":
        return f"{service.name} was already {'stopped' if action == 'stop' else 'running'}"
    if result.rc != 0 or "ERROR" in out:
        raise ActionFailed(f"host {host.name}: {action} {service.name} failed: {out.strip()}")
    return out or f"{action} {service.name}: done"


def reload(env: Environment, host: Host, service: Service) -> str:
    """Reload a running service gracefully (its new workers start before the old ones stop: SIGHUP to
    gunicorn under supervisord, `systemctl reload` under systemd); start it when it is not running."""
    if not running(env, host, service).ok:
        return control(env, host, service, "start")
    if service.manager == "systemd":
        argv = ["systemctl", "reload", service.name]
    else:
        ctl, conf = _supervisor(env)
        argv = [ctl, "-c", conf, "signal", "HUP", service.name]
    result = connection.script(host, '"$@" 2>&1', *argv)
    out = result.stdout.strip()
    if result.rc != 0 or "ERROR" in out:
        raise ActionFailed(f"host {host.name}: reload {service.name} failed: {out}")
    return out or f"reload {service.name}: done"


def running(env: Environment, host: Host, service: Service) -> Finding:
    """Whether the service runs on the host, as testinfra sees it."""
    remote = connection.connect(host)
    if service.manager == "systemd":
        unit = remote.service(service.name)
        ok = unit.is_running
        detail = f"systemd unit {service.name} is {'running' if ok else 'not running'}"
    else:
        ctl, conf = _supervisor(env)
        program = remote.supervisor(service.name, supervisorctl_path=ctl, supervisorctl_conf=conf)
        ok = program.is_running
        detail = f"supervisord program {service.name} is {program.status}" + (f" (pid {program.pid})" if ok else "")
    return Finding(f"host {host.name}", ok, detail)

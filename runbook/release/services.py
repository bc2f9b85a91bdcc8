"""The app's services, stopped, started and checked through the environment's service manager:
systemd (`systemctl`) on real hosts, supervisord where there is no systemd (the local environment).

Each manager is a class, chosen once per service by `manager()` from the service's `manager` field, as
testinfra's `Service.get_module_class` picks an implementation; the functions below only delegate.
"""

import shlex
import sys
from pathlib import Path

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed
from testinfra.host import Host as Remote

from runbook import local
from runbook.config import Environment, Host, Service
from runbook.errors import ActionFailed, RunbookError
from runbook.findings import Finding
from runbook.hosts import connection, runner


class ServiceManager:
    """One service under its manager: the argument lists that control it, and how to read the answers."""

    label: str
    """The manager's name, as the record says who reported a state ("systemd says ...")."""
    nothing_to_do: dict[str, str] = {}
    """Per action, the words in which the manager says the service already was as asked."""

    def __init__(self, env: Environment, service: Service) -> None:
        """Every manager is made alike; `env` is for those that read it (where supervisorctl is)."""
        self.service = service

    def command(self, action: str) -> list[str]:
        """The argument list for `start`, `stop` or `reload` (graceful: new workers before old ones stop)."""
        raise NotImplementedError

    def pid_command(self) -> list[str]:
        """The argument list that prints the main process id (0 when it is not running)."""
        raise NotImplementedError

    def already(self, action: str, said: str) -> bool:
        words = self.nothing_to_do.get(action)
        return words is not None and words in said

    def refused(self, code: int, said: str) -> bool:
        return code != 0

    def running(self, remote: Remote) -> tuple[bool, str]:
        """Whether the service runs, as testinfra sees it, and the words for the record."""
        raise NotImplementedError

    def prepare_command(self, action: str) -> list[str] | None:
        """An argument list to run before `action`, if the manager needs one."""
        return None

    def state_command(self) -> list[str]:
        """The argument list that prints the manager's word for the service's state (`failed`, `FATAL`)."""
        raise NotImplementedError

    def state(self, said: str) -> str:
        """The state word in what `state_command` printed."""
        return said.strip()

    def evidence_commands(self) -> list[list[str]]:
        """The argument lists whose output shows why the service failed: its state in detail, its log."""
        raise NotImplementedError


class Systemd(ServiceManager):
    label = "systemd"

    def command(self, action: str) -> list[str]:
        return ["systemctl", action, self.service.name]

    def prepare_command(self, action: str) -> list[str] | None:
        """Before a start, `reset-failed`: a unit left `failed` by an earlier start keeps its failed state
        (and its start limit count) until it is reset, so a rollback's start of it would be refused."""
        return ["systemctl", "reset-failed", self.service.name] if action == "start" else None

    def state_command(self) -> list[str]:
        return ["systemctl", "is-failed", self.service.name]

    def evidence_commands(self) -> list[list[str]]:
        name = self.service.name
        return [["systemctl", "show", "-p", "ActiveState,SubState,Result", name],
                ["journalctl", "-u", name, "-n", "50", "--no-pager", "-q"]]

    def pid_command(self) -> list[str]:
        return ["systemctl", "show", "-p", "MainPID", "--value", self.service.name]

    def running(self, remote: Remote) -> tuple[bool, str]:
        ok = remote.service(self.service.name).is_running
        return ok, f"systemd unit {self.service.name} is {'running' if ok else 'not running'}"


class Supervisord(ServiceManager):
    label = "supervisord"
    nothing_to_do = {"start": "(already started)", "stop": "(not running)"}

    def __init__(self, env: Environment, service: Service) -> None:
        """supervisorctl and the config it reads: the local environment's own, or the configured one."""
        super().__init__(env, service)
        if env.local is not None:
            self.ctl = str(Path(sys.executable).parent / "supervisorctl")
            self.conf = str(local.paths(env).supervisord_conf)
        else:
            self.ctl, self.conf = env.supervisor.ctl, str(env.supervisor.config)

    def _ctl(self, *words: str) -> list[str]:
        return [self.ctl, "-c", self.conf, *words, self.service.name]

    def command(self, action: str) -> list[str]:
        """`reload` is SIGHUP: gunicorn starts new workers, then stops the old ones."""
        return self._ctl("signal", "HUP") if action == "reload" else self._ctl(action)

    def pid_command(self) -> list[str]:
        return self._ctl("pid")

    def refused(self, code: int, said: str) -> bool:
        """Also "ERROR" in its words: some supervisorctl versions exit 0 when they refuse."""
        return code != 0 or "ERROR" in said

    def state_command(self) -> list[str]:
        return self._ctl("status")

    def state(self, said: str) -> str:
        """`web   FATAL   Exited too quickly`: the word after the program's name."""
        words = said.split()
        return words[1] if len(words) > 1 else said.strip()

    def evidence_commands(self) -> list[list[str]]:
        """Its status, and the end of the program's log (supervisorctl's `tail`: the last 1600 bytes)."""
        return [self._ctl("status"), self._ctl("tail")]

    def running(self, remote: Remote) -> tuple[bool, str]:
        program = remote.supervisor(self.service.name, supervisorctl_path=self.ctl, supervisorctl_conf=self.conf)
        ok = program.is_running
        pid = f" (pid {program.pid})" if ok else ""
        return ok, f"supervisord program {self.service.name} is {program.status}{pid}"


MANAGERS: dict[str, type[ServiceManager]] = {"systemd": Systemd, "supervisord": Supervisord}


def manager(env: Environment, service: Service) -> ServiceManager:
    """The service's manager, from its `manager` field: the one place that tells them apart."""
    return MANAGERS[service.manager](env, service)


def pid_command(env: Environment, service: Service) -> list[str]:
    """The argument list that prints the service's main process id on a host (0 when it is not running)."""
    return manager(env, service).pid_command()


def placements(env: Environment) -> list[tuple[Host, Service]]:
    """Every (host, service) pair: each service on each host with one of its roles."""
    return [(h, s) for s in env.services for h in env.hosts_with_any(s.roles)]


def control(env: Environment, host: Host, service: Service, action: str) -> str:
    """`start` or `stop` one service on one host; `ActionFailed` with the manager's words if it refuses."""
    return _order(env, host, service, action)


def reload(env: Environment, host: Host, service: Service) -> str:
    """Reload a running service gracefully (its new workers start before the old ones stop: SIGHUP to
    gunicorn under supervisord, `systemctl reload` under systemd); start it when it is not running."""
    if not running(env, host, service).ok:
        return control(env, host, service, "start")
    return _order(env, host, service, "reload")


def restart(env: Environment, host: Host, service: Service) -> str:
    """Stop the service and start it: for an instance no traffic reaches any more. One that does not run is
    stopped all the same (the manager says it was already: `nothing_to_do`), which spares asking first."""
    return f"{control(env, host, service, 'stop')}; {control(env, host, service, 'start')}"


def _order(env: Environment, host: Host, service: Service, action: str) -> str:
    """Have the manager carry out `action`; what it said, or `ActionFailed` with its words, the state the
    manager reports the service in and, as evidence, what shows why (`diagnose`)."""
    chosen = manager(env, service)
    before = chosen.prepare_command(action)
    if before is not None:
        runner.run(host, before, combined=True, kind="services")
    result = runner.run(host, chosen.command(action), combined=True, kind="services")
    said = result.stdout.strip()
    if chosen.already(action, said):
        if action == "start":
            _until_running(env, host, service)
        return f"{service.name} was already {'stopped' if action == 'stop' else 'running'}"
    if chosen.refused(result.rc, said):
        state, evidence = diagnose(env, host, service)
        raise ActionFailed(f"host {host.name}: {action} {service.name} failed: {said}; {state}", evidence=evidence)
    return said or f"{action} {service.name}: done"


def _until_running(env: Environment, host: Host, service: Service) -> None:
    """A service whose start is under way (supervisord's STARTING, another run's start) runs once it ends:
    wait for that within the `services` deadline; `ActionFailed` naming its state when it does not."""
    seconds = env.deadlines.services
    found = Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.5), retry=retry_if_result(lambda f: not f.ok),
                     retry_error_callback=lambda state: state.outcome.result())(running, env, host, service)
    if not found.ok:
        raise ActionFailed(f"host {host.name}: {service.name} was being started but does not run within {seconds} s: "
                           f"{found.detail}")


def diagnose(env: Environment, host: Host, service: Service) -> tuple[str, list[str]]:
    """The manager's words for the service's state ("systemd says web is failed") and, one item per
    command, its detailed state and its log; a command that cannot run says so instead of its output."""
    chosen = manager(env, service)

    def output(argv: list[str]) -> str:
        try:
            return runner.run(host, argv, combined=True, kind="services").stdout.strip()
        except RunbookError as e:
            return f"could not be read: {e}"

    state = chosen.state(output(chosen.state_command()))
    evidence = [f"host {host.name}: {shlex.join(argv)}\n{output(argv)}" for argv in chosen.evidence_commands()]
    return f"{chosen.label} says {service.name} is {state or 'in no state it names'}", evidence


def running(env: Environment, host: Host, service: Service) -> Finding:
    """Whether the service runs on the host, as testinfra sees it."""
    ok, detail = manager(env, service).running(connection.connect(host))
    return Finding(f"host {host.name}", ok, detail)

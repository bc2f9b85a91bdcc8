"""Steps 7 and 9: the app's services stopped, started or reloaded on the hosts the phase acts on."""

from typing import Callable

from runbook.config import Host, Service
from runbook.engine.deployment import Deployment
from runbook.hosts import connection
from runbook.release import services


def _placements(d: Deployment) -> list[tuple[Host, Service]]:
    """The services on the hosts this phase acts on."""
    return [(h, s) for h, s in services.placements(d.env) if h in d.hosts]


def _each_service(d: Deployment, act: Callable) -> list[str]:
    if not d.hosts:
        return ["no host to act on: the deploy changed none"]
    d.touch(d.hosts)
    return connection.each(_placements(d), lambda placed: f"{placed[0].name}: {act(d.env, *placed)}")


def stop_services(d: Deployment) -> list[str]:
    return _each_service(d, lambda env, h, s: services.control(env, h, s, "stop"))


def start_services(d: Deployment) -> list[str]:
    return _each_service(d, lambda env, h, s: services.control(env, h, s, "start"))


def reload_services(d: Deployment) -> list[str]:
    """The rolling strategy's switch of the running app: new workers on `current`, then the old ones go."""
    return _each_service(d, services.reload)

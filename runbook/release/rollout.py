"""How a release reaches the app hosts: batches as Ansible's `serial` makes them, the failure limit as
its `max_fail_percentage` defines it, each host's own health check, the load balancer commands
that drain a host before its switch and restore it after, and the app's instances behind a load
balancer's runtime API, taken one at a time (`rotate`).

    >>> [len(b) for b in batches([1, "50%"], hosts_of_five)]
    [1, 2, 2]
"""

import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from runbook.checks import probes
from runbook.hosts.connection import each
from runbook.config import BalancedServer, Batch, Environment, Host
from runbook.errors import ActionFailed, CheckFailed
from runbook.release import haproxy, services

COMMAND_TIMEOUT = 60
"""Seconds a drain or restore command may take."""


def batches(serial: Batch | list[Batch], hosts: list[Host]) -> list[list[Host]]:
    """The hosts in batches: each size a count or a percentage of all hosts (rounded down, at least one);
    in a list, each entry is the next batch's size and the last entry repeats."""
    sizes = serial if isinstance(serial, list) else [serial]
    result, rest, turn = [], list(hosts), 0
    while rest:
        size = sizes[min(turn, len(sizes) - 1)]
        count = max(1, int(len(hosts) * float(size[:-1]) / 100)) if isinstance(size, str) else size
        result.append(rest[:count])
        rest, turn = rest[count:], turn + 1
    return result


def plan(env: Environment) -> list[list[Host]]:
    """The environment's app hosts in the batches of its `rollout.serial`."""
    return batches(env.rollout.serial, env.hosts_with("app"))


def exceeded(failed: int, batch_size: int, max_fail_percentage: float) -> bool:
    """Ansible's rule: the rollout stops when a batch's failed hosts are MORE than the percentage."""
    return failed > 0 and 100.0 * failed / batch_size > max_fail_percentage


def previous_release_meets_new_schema(env: Environment) -> bool:
    """Whether the previous release serves on the migrated schema during a deploy: under `rolling`, and
    under `maintenance` in several batches (later batches serve while the first one migrates)."""
    return env.rollout.strategy == "rolling" or len(plan(env)) > 1


def _render(template: str, host: Host) -> str:
    engine = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    return engine.from_string(template).render(**host.vars, name=host.name, address=host.address)


def host_urls(env: Environment, host: Host) -> tuple[str, str]:
    """The health and status URLs that reach this host alone (`rollout.host_url` plus the endpoints'
    paths), or the environment's endpoints when no `host_url` is configured."""
    if env.rollout.host_url is None:
        return env.endpoints.health, env.endpoints.status
    base = _render(env.rollout.host_url, host).rstrip("/")
    return tuple(base + urlsplit(url).path for url in (env.endpoints.health, env.endpoints.status))


def serves(env: Environment, host: Host, version: str) -> str:
    """Wait until the host answers healthy and reports `version`; `CheckFailed` naming the host if not."""
    health, status = host_urls(env, host)
    try:
        answers = [probes.answers(env, health, 200), probes.reports_version(env, version, status)]
    except CheckFailed as e:
        raise CheckFailed(f"host {host.name}: {e}") from None
    return f"host {host.name}: " + "; ".join(map(str, answers))


@dataclass(frozen=True)
class Outcome:
    """The hosts of a batch that answered, and those that did not (with why)."""

    healthy: list[str]
    failed: dict[str, str]


def check_batch(env: Environment, hosts: list[Host], version: str) -> Outcome:
    """Every host of the batch checked concurrently."""
    def one(host: Host) -> tuple[str, str | None, str]:
        try:
            return host.name, None, serves(env, host, version)
        except CheckFailed as e:
            return host.name, str(e), ""

    results = each(hosts, one)
    return Outcome([note for _, error, note in results if error is None],
                   {name: error for name, error, _ in results if error is not None})


def service_states(env: Environment, hosts: list[Host]) -> tuple[list[str], list[str]]:
    """Why hosts may have failed their health check: each of their services' state as its manager says
    it (`host web2: systemd says web is failed`), and, as evidence, its state in detail and its log."""
    placed = [(h, s) for h, s in services.placements(env) if h in hosts]
    found = each(placed, lambda pair: services.diagnose(env, *pair))
    return ([f"host {h.name}: {state}" for (h, _), (state, _) in zip(placed, found)],
            [line for _, evidence in found for line in evidence])


def balancer(env: Environment, host: Host, which: str) -> str | None:
    """Run the `drain` or `restore` command for the host on this machine; None when none is configured."""
    template = getattr(env.rollout, which)
    if template is None:
        return None
    argv = [_render(part, host) for part in template]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ActionFailed(f"{which} {host.name}: {argv[0]} could not run: {e}") from None
    if result.returncode != 0:
        raise ActionFailed(f"{which} {host.name}: {argv[0]} exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
    return f"{which} {host.name}: {' '.join(argv)}" + (f": {result.stdout.strip()[-300:]}" if result.stdout.strip() else "")


def instance_serves(env: Environment, server: BalancedServer, version: str | None) -> str:
    """Wait until the instance answers healthy (and reports `version`) on its own address."""
    base = f"http://{server.address}"
    health, status = (base + urlsplit(url).path for url in (env.endpoints.health, env.endpoints.status))
    try:
        answers = [probes.answers(env, health, 200)]
        if version is not None:
            answers.append(probes.reports_version(env, version, status))
    except CheckFailed as e:
        raise ActionFailed(f"instance {server.name} stays out of the load balancer: {e}") from None
    return f"instance {server.name}: " + "; ".join(map(str, answers))


def rotate(env: Environment, host: Host, version: str | None) -> list[str]:
    """The host's services one at a time onto `current`: each behind the load balancer is drained until
    its sessions end, restarted, checked on its own address and returned `ready` once HAProxy sees it UP
    (a drain that does not end in time returns it as it was, unchanged); any other service is reloaded."""
    lb, seconds, notes = env.load_balancer, env.deadlines.drain, []
    for service in (s for h, s in services.placements(env) if h == host):
        server = lb.server_of(service.name, host.name)
        if server is None:
            notes.append(f"{host.name}: {services.reload(env, host, service)}")
            continue
        try:
            notes.append(haproxy.drain(lb, server.name, seconds))
        except ActionFailed:
            haproxy.order(lb, server.name, "ready")
            raise
        notes.append(f"{host.name}: {services.restart(env, host, service)}")
        notes.append(instance_serves(env, server, version))
        notes.append(haproxy.ready(lb, server.name, seconds))
    return notes

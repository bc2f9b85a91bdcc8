"""Probes of the external services an app depends on: HTTP APIs, Redis, AMQP brokers, file storage, and
the load balancer (HAProxy: its frontend answers and its runtime API sees every server UP)."""

from urllib.parse import urlsplit

import pika
import redis

from runbook.checks import monitoring
from runbook.hosts import survey
from runbook.config import Dependency, Environment
from runbook.errors import ActionFailed
from runbook.findings import Finding
from runbook.release import haproxy, releases
from runbook.secrets import expand, redact
from runbook import http


def probe(env: Environment, dep: Dependency) -> list[Finding]:
    """One finding per place the dependency was checked from (the runner, or each app host for storage)."""
    subject = f"{dep.kind} dependency {dep.name}"
    if dep.kind == "storage":
        return [_storage(subject, host, dep.path) for host in env.hosts_with("app")]
    where = redact(target(dep))
    if dep.kind == "haproxy":
        return [_haproxy(env, subject, where, dep)]
    try:
        ok, detail = (monitoring.probe(env, expand(dep.url), dep.timeout) if dep.kind == "prometheus"
                      else PROBES[dep.kind](expand(dep.url), dep))
    except Exception as e:  # every client's failure is the finding, with its reason
        return [Finding(subject, False, f"{where} does not answer: {redact(str(e) or type(e).__name__)}")]
    return [Finding(subject, ok, f"{where} {detail}")]


def target(dep: Dependency) -> str:
    return dep.url or dep.path or ""


def address(dep: Dependency) -> tuple[str, int] | None:
    """Host and port of a network dependency, for reachability checks from the app hosts."""
    if dep.kind == "storage":
        return None
    parts = urlsplit(dep.url)
    default = {"http": 80, "https": 443, "redis": 6379, "rediss": 6380, "amqp": 5672, "amqps": 5671}
    return parts.hostname, parts.port or default.get(parts.scheme, 0)


def _http(url: str, dep: Dependency) -> tuple[bool, str]:
    response = http.request("GET", url, timeout=dep.timeout, ca_file=dep.ca_file, allow_redirects=False)
    return response.status_code == dep.expect_status, (
        f"answered HTTP {response.status_code} (expected {dep.expect_status})"
    )


def _haproxy(env: Environment, subject: str, where: str, dep: Dependency) -> Finding:
    """The frontend answers through TLS and every server of the backend is UP, once none is between two
    states (within `endpoints.settle_seconds`); the finding names each server's state. Before the first
    deploy no instance runs: the frontend's own answer (HAProxy's 503) is all there is to check then."""
    lb = env.load_balancer
    try:
        answered, said = _http(expand(dep.url), dep)
        reached = True
    except Exception as e:  # the client's failure is the finding, with its reason
        answered, reached, said = False, False, f"does not answer: {redact(str(e) or type(e).__name__)}"
    try:
        found = haproxy.settled(lb, env.endpoints.settle_seconds)
    except ActionFailed as e:
        return Finding(subject, False, f"{where} {said}; {e}")
    missing = sorted({s.name for s in lb.servers} - {s.name for s in found})
    up = bool(found) and not missing and all(s.status == "UP" for s in found)
    states = "; ".join(map(str, found)) or "no server"
    lacking = f"; not in HAProxy's configuration: {', '.join(missing)}" if missing else ""
    detail = f"{where} {said}; backend {lb.backend}: {states}{lacking}"
    if not up and reached and not missing and not any(releases.current(env, h) for h in env.hosts_with("app")):
        return Finding(subject, True, f"{detail}; no release is live yet (first deploy): no instance runs, "
                                      f"the frontend answers")
    return Finding(subject, answered and up, detail)


def _redis(url: str, dep: Dependency) -> tuple[bool, str]:
    client = redis.Redis.from_url(url, socket_timeout=dep.timeout, socket_connect_timeout=dep.timeout)
    try:
        client.ping()
        return True, f"answered PING (Redis {client.info('server')['redis_version']})"
    finally:
        client.close()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _amqp(url: str, dep: Dependency) -> tuple[bool, str]:
    params = pika.URLParameters(url)
    params.socket_timeout = dep.timeout
    params.blocked_connection_timeout = dep.timeout
    params.stack_timeout = dep.timeout
    params.connection_attempts = 1
    connection = pika.BlockingConnection(params)
    try:
        server = connection._impl.server_properties
        name = f"{_text(server.get('product', 'AMQP broker'))} {_text(server.get('version', ''))}".strip()
        return True, f"answered: connection opened ({name})"
    finally:
        connection.close()


def _storage(subject: str, host, folder: str) -> Finding:
    reason = survey.writable(host, folder)
    where = f"{folder} on {host.name}"
    return Finding(subject, reason is None, f"{where} is writable" if reason is None else f"{where} is not writable: {reason}")


PROBES = {"http": _http, "redis": _redis, "amqp": _amqp}

"""Step 5's security checks (`security:` in the environment file): the sockets each host listens on, the
secret files' owner and mode, the refusal of requests without a login, and the app's audit log.

    >>> parse_listening("LISTEN 0 128 0.0.0.0:443 0.0.0.0:*\\nLISTEN 0 4096 [::1]:5432 [::]:*")
    [Socket(address='0.0.0.0', port=443), Socket(address='::1', port=5432)]
"""

import json
from dataclasses import dataclass
from ipaddress import ip_address
from secrets import token_hex

from runbook.checks import smoke
from runbook.config import Environment, Host, RequiredFile
from runbook.config.security import Exposed, Listening, Security
from runbook.engine import state
from runbook.errors import RunbookError
from runbook.findings import Finding, NotConfigured, passed_with
from runbook.hosts import commands, connection, runner, survey

WILDCARD = "*"
"""How `ss` writes a socket bound to every address of both families."""


@dataclass(frozen=True, order=True)
class Socket:
    address: str
    port: int

    @property
    def canonical(self) -> str:
        """The address as `ipaddress` writes it (as `Exposed.address` is), e.g. `::ffff:7f00:1`."""
        return self.address if self.address == WILDCARD else str(ip_address(self.address))

    @property
    def loopback(self) -> bool:
        if self.address == WILDCARD:
            return False
        ip = ip_address(self.address)
        mapped = getattr(ip, "ipv4_mapped", None)
        return ip.is_loopback or bool(mapped and mapped.is_loopback)

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def parse_listening(output: str) -> list[Socket]:
    """The local sockets of `ss -Htln` output (its fourth column: `0.0.0.0:22`, `[::1]:5432`, `*:80`,
    `127.0.0.53%lo:53`), each address without brackets or interface."""
    found = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        address, _, port = fields[3].rpartition(":")
        socket = Socket(address.removeprefix("[").removesuffix("]").partition("%")[0], int(port))
        socket.canonical  # ValueError for an address that is not one
        found.append(socket)
    return found


def _allows(entry: Exposed, host: Host, socket: Socket) -> bool:
    return (entry.port == socket.port and entry.host in (None, host.name)
            and entry.address in (None, socket.canonical))


def _beyond_loopback(sockets: list[Socket], listening: Listening) -> list[Socket]:
    """The sockets on a non-loopback address, of the ports judged."""
    judged = listening.only_ports
    return sorted({s for s in sockets if not s.loopback and (judged is None or s.port in judged)})


def unexpected(sockets: list[Socket], host: Host, listening: Listening) -> list[Socket]:
    """The sockets on a non-loopback address (of the ports judged) that no `exposed` entry allows the host."""
    return [s for s in _beyond_loopback(sockets, listening) if not any(_allows(e, host, s) for e in listening.exposed)]


def _listening(host: Host, listening: Listening) -> Finding:
    subject = f"host {host.name}"
    try:
        sockets = parse_listening(runner.must(host, commands.listening_sockets(), what="listing listening sockets"))
    except (RunbookError, RuntimeError, ValueError) as e:
        return Finding(subject, False, f"cannot list its listening sockets: {e}")
    scope = f" (judging ports {', '.join(map(str, listening.only_ports))})" if listening.only_ports is not None else ""
    wrong = unexpected(sockets, host, listening)
    if wrong:
        return Finding(subject, False, f"listens on {', '.join(map(str, wrong))}{scope}, not declared under "
                                       "security.listening.exposed")
    shown = ", ".join(map(str, _beyond_loopback(sockets, listening)))
    judged = f"beyond loopback only {shown}, as declared" if shown else "none beyond loopback"
    return Finding(subject, True, f"{len(sockets)} listening sockets{scope}: {judged}")


def _section(env: Environment) -> Security:
    if env.security is None:
        raise NotConfigured(f"no security section is configured for {env.name}")
    return env.security


def listening(env: Environment) -> list[Finding]:
    """Every host listens beyond loopback only on the sockets `security.listening.exposed` allows it."""
    declared = _section(env).listening
    if declared is None:
        raise NotConfigured(f"security.listening is not configured for {env.name}")
    return connection.each(env.hosts, lambda h: _listening(h, declared))


def _live(env: Environment) -> str | None:
    """The release serving now, as the environment's state says; None before the first deploy."""
    live = state.load(env).live
    return live and live.release


def _nothing_serves(env: Environment) -> list[Finding]:
    return passed_with(f"app {env.app.name}", "no release is deployed yet: nothing serves to be checked")


def secret_files(env: Environment) -> list[Finding]:
    """Each declared secret file, and each config file of the live release (with the mode `app.config` gives
    it), has its owner and mode on the hosts of its roles."""
    declared = _section(env).secret_files
    release = _live(env)
    deployed = [RequiredFile(path=str(env.app.current / f.path), mode=f.mode) for f in env.app.config] if release else []
    if not declared and not deployed:
        return passed_with("secret files", "none is declared, and no release is deployed yet whose config files to check")
    return survey.required_files_of(env, declared + deployed)


def refused_without_login(env: Environment) -> list[Finding]:
    """The release serving now refuses each request that needs a login when it has none (Step 11's check)."""
    return smoke.unauthenticated_refused(env) if _live(env) else _nothing_serves(env)


def _events(result, request_id: str) -> list[dict]:
    """The JSON events of the lines `grep` found that carry `request_id`."""
    found = []
    for line in result.stdout.splitlines() if result.rc == 0 else []:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("request_id") == request_id:
            found.append(event)
    return found


def audit_records_login(env: Environment) -> list[Finding]:
    """Log in with the smoke test account under a new request id: an app host's audit log must then hold
    the event of that login (time, actor, action `login`, subject)."""
    audit = _section(env).audit
    if audit is None:
        raise NotConfigured(f"security.audit is not configured for {env.name}")
    if not _live(env):
        return _nothing_serves(env)
    request_id = f"runbook-audit-{token_hex(8)}"
    user = smoke.log_in(env, headers={"X-Request-Id": request_id}).user
    hosts = env.hosts_with("app")
    results = connection.each(hosts, lambda h: runner.run(h, commands.lines_containing(request_id, audit.log)))
    subject = f"audit log {audit.log}"
    found = [(host, event) for host, result in zip(hosts, results) for event in _events(result, request_id)]
    if not found:
        reasons = [f"host {h.name}: " + (r.stderr.strip() or "no such event") for h, r in zip(hosts, results)]
        return [Finding(subject, False, f"no event for the login of {user} (request id {request_id}): "
                                        + "; ".join(reasons))]
    host, event = found[0]
    ok = all(event.get(k) for k in ("time", "subject")) and event.get("action") == "login" and event.get("actor") == user
    return [Finding(subject, ok, f"host {host.name} recorded the login as {json.dumps(event)}"
                    + ("" if ok else f": expected action 'login' by {user!r}, with its time and subject"))]

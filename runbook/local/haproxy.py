"""The local stack's load balancer: Debian's HAProxy terminating TLS (the local CA's certificate) in front
of the servers of `load_balancer`, health-checking each on `/health`, with its runtime API on
`load_balancer.socket` and its Prometheus exporter and stats page on a loopback-only port.

Its configuration is rendered from the environment and checked with `haproxy -c` before it replaces the
one in use; a running HAProxy then reloads it (master-worker mode: SIGUSR2, no connection lost).
"""

import shlex
import shutil
import subprocess
from pathlib import Path

import jinja2

from runbook.config import Environment
from runbook.errors import ConfigError, RunbookError
from runbook.local import tls
from runbook.local.paths import Paths
from runbook.local.stack import Part
from runbook.local.supervisor import Program, running, supervisorctl

PROGRAM = "haproxy"

CONFIG = jinja2.Template(
    """\
# written by runbook for the local environment {{ env.name }}; changes are overwritten
global
    stats socket {{ socket }} mode 600 level admin
    stats timeout 30s

defaults
    mode http
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s

frontend https
    bind *:{{ local.port }} ssl crt {{ certificate }}
    http-request set-header X-Forwarded-Proto https
    default_backend {{ lb.backend }}

backend {{ lb.backend }}
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter {{ local.check_interval_ms }} fall 2 rise 2
{%- for server in lb.servers %}
    server {{ server.name }} {{ server.address }} check
{%- endfor %}

frontend exporter
    bind 127.0.0.1:{{ local.exporter_port }}
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /stats
    stats refresh 10s
""",
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if not found:
        raise RunbookError("haproxy not found: install Debian's package (apt-get install haproxy)")
    return found


def check_command(config: Path) -> list[str]:
    return [binary(), "-c", "-f", str(config)]


def run_command(config: Path) -> list[str]:
    """Master-worker (`-W`), in the foreground (`-db`): supervisord runs it, SIGUSR2 reloads it."""
    return [binary(), "-W", "-db", "-f", str(config)]


def config_path(p: Paths) -> Path:
    return p.state / "haproxy" / "haproxy.cfg"


def render(env: Environment, p: Paths) -> str:
    return CONFIG.render(env=env, lb=env.load_balancer, local=env.local.haproxy,
                         socket=env.load_balancer.socket.resolve(), certificate=tls.files(p).server.resolve())


def validate(config: Path) -> None:
    """`haproxy -c`: a configuration HAProxy refuses is a `ConfigError` with its words."""
    try:
        result = subprocess.run(check_command(config), capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"haproxy -c -f {config}: no answer within 30 s") from None
    if result.returncode != 0:
        raise ConfigError(f"HAProxy refuses the configuration rendered from the environment ({config}): "
                          f"{_alerts(result.stderr or result.stdout)}")


def _alerts(said: str) -> str:
    """HAProxy's ALERT lines (its NOTICE lines only name its version and path)."""
    alerts = [line for line in said.splitlines() if "[ALERT]" in line or "[WARNING]" in line]
    return "\n".join(alerts or said.strip().splitlines())[-1500:]


class Haproxy(Part):
    def prepare(self, env: Environment, p: Paths) -> list[str]:
        done = tls.ensure(p)
        target = config_path(p)
        target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        env.load_balancer.socket.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        text = render(env, p)
        if target.exists() and target.read_text() == text:
            return done
        candidate = target.with_suffix(".cfg.new")
        candidate.write_text(text)
        candidate.chmod(0o600)
        validate(candidate)
        candidate.replace(target)
        done.append(f"wrote HAProxy's configuration {target} (checked with haproxy -c)")
        if running(p) and "RUNNING" in supervisorctl(p, "status", PROGRAM).stdout:
            supervisorctl(p, "signal", "USR2", PROGRAM)
            done.append("HAProxy reloaded its configuration")
        return done

    def programs(self, env: Environment, p: Paths) -> list[Program]:
        return [Program(PROGRAM, shlex.join(run_command(config_path(p))), p.state,
                        listens=("127.0.0.1", env.local.haproxy.exporter_port))]

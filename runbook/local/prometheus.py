"""The local stack's Prometheus: Debian's `/usr/bin/prometheus` under supervisord, on the address of
`monitoring.url`, scraping `monitoring.jobs` every `local.prometheus.scrape_seconds`, with the alert
rules rendered from the environment file. Its configuration and data live in `<state>/prometheus/`.

Every file is checked with `promtool` before it replaces the one in use, so a file it rejects is a
clear error and the server keeps what it had; a change is taken up by a reload (`POST /-/reload`).
"""

import shlex
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from runbook.config import Environment
from runbook.errors import ConfigError, RunbookError
from runbook.local.paths import Paths, run
from runbook.local.stack import Part
from runbook.local.supervisor import Program
from runbook.watch import alerts

APT = "apt-get install prometheus"


def folder(p: Paths) -> Path:
    return p.state / "prometheus"


def binary(name: str) -> str:
    """`prometheus` or `promtool`: on PATH, else Debian's /usr/bin; a clear error when neither has it."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        raise ConfigError(f"{name} not found: the local stack's Prometheus needs Debian's package ({APT})")
    return found


def address(env: Environment) -> tuple[str, int]:
    """(host, port) of `monitoring.url`."""
    parts = urlsplit(env.monitoring.url)
    return parts.hostname, parts.port or 80


def scrape_config(env: Environment, p: Paths) -> dict:
    """prometheus.yml: every job of `monitoring.jobs`, scraped and evaluated every `scrape_seconds`."""
    every = alerts.duration(env.local.prometheus.scrape_seconds)
    timeout = alerts.duration(env.local.prometheus.scrape_seconds * 0.8)
    return {
        "global": {"scrape_interval": every, "scrape_timeout": timeout, "evaluation_interval": every},
        "rule_files": [str(folder(p).resolve() / "rules" / "*.yml")],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                           for job, targets in env.monitoring.jobs.items()],
    }


def command(env: Environment, p: Paths) -> list[str]:
    """The server's argument list: lifecycle API on (for reloads), data kept `local.prometheus.retention`."""
    return [binary("prometheus"), f"--config.file={folder(p).resolve() / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder(p).resolve() / 'data'}",
            f"--storage.tsdb.retention.time={env.local.prometheus.retention}",
            f"--web.listen-address={':'.join(map(str, address(env)))}", "--web.enable-lifecycle"]


def check_argv(kind: str, path: Path) -> list[str]:
    """`promtool check config|rules PATH`."""
    return [binary("promtool"), "check", kind, str(path)]


def install(path: Path, text: str, kind: str) -> bool:
    """Put `text` at `path` once `promtool check <kind>` accepts it; False when it is there already.
    A file promtool rejects is a `ConfigError` quoting promtool, and `path` is left as it was."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.new")  # beside it, outside the rule files' glob
    candidate.write_text(text)
    try:
        run(check_argv(kind, candidate), f"promtool check {kind} of {path}", timeout=60)
    except RunbookError as e:
        candidate.unlink()
        raise ConfigError(str(e)) from None
    candidate.replace(path)
    return True


def reload(env: Environment) -> list[str]:
    """Have a running server take up its changed files; nothing when it is not running (it reads them on start)."""
    import requests  # requests loads only when there is a change to take up

    from runbook import http

    url = env.monitoring.url.rstrip("/")
    try:
        response = http.request("POST", f"{url}/-/reload", timeout=30)
    except requests.ConnectionError:
        return []
    except requests.RequestException as e:
        raise RunbookError(f"Prometheus at {url} did not reload: {e}") from None
    if response.status_code != 200:
        raise RunbookError(f"Prometheus at {url} refused to reload ({response.status_code}): {response.text.strip()}")
    return [f"reloaded Prometheus at {url}"]


class Prometheus(Part):
    """Prometheus of the local stack."""

    def prepare(self, env: Environment, p: Paths) -> list[str]:
        (folder(p) / "data").mkdir(parents=True, exist_ok=True)
        rules = install(folder(p) / "rules" / "runbook.yml", alerts.rules_file(env), "rules")
        conf = install(folder(p) / "prometheus.yml", yaml.safe_dump(scrape_config(env, p), sort_keys=False), "config")
        done = ([f"wrote Prometheus's alert rules ({len(env.monitoring.alerts)})"] if rules else []) + (
            [f"wrote Prometheus's configuration ({', '.join(env.monitoring.jobs)})"] if conf else [])
        return done + (reload(env) if done else [])

    def programs(self, env: Environment, p: Paths) -> list[Program]:
        return [Program("prometheus", shlex.join(command(env, p)), folder(p), listens=address(env))]

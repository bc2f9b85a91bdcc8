"""An environment file as one model: its sections, the checks that look across them, and lookups over them."""

import getpass
import sys
from pathlib import Path
from typing import Any, Iterator

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from runbook import ROOT
from runbook.checks import scenarios
from runbook.config.app import App, Database, Local, Service, Supervisor
from runbook.config.base import Model, Name, _key
from runbook.config.checks import (Attestations, Dependency, Endpoints, NotApplicable, RequiredFile, Thresholds,
                                   TlsEndpoint, Waiver)
from runbook.config.deadlines import Deadlines
from runbook.config.governance import Approval, Notification, Signing
from runbook.config.hosts import Host, Ssh
from runbook.config.monitoring import Monitoring
from runbook.config.observation import Performance, Watch
from runbook.config.rollout import LoadBalancer, Rollback, Rollout
from runbook.config.security import Security
from runbook.config.ui import Ui
from runbook.errors import ConfigError
from runbook.hosts import inventory
from runbook.secrets import references


class Environment(Model):
    name: Name
    description: str = ""
    strict: bool = True
    """Held to the strict rules: a `@critical` check that cannot run (nothing configured, no version named)
    fails unless `not_applicable` declares it, and attestations expire. Default: every environment but a
    local one."""
    inventory: Path | None = None
    """An Ansible inventory (INI or YAML) naming the hosts, instead of `hosts`; see `runbook/hosts/inventory.py`."""
    ssh: Ssh = Ssh()
    deadlines: Deadlines = Deadlines()
    hosts: list[Host] = Field(default_factory=list, validate_default=True)
    app: App
    services: list[Service] = []
    supervisor: Supervisor | None = None
    database: Database
    endpoints: Endpoints
    dependencies: list[Dependency] = []
    tls: list[TlsEndpoint] = []
    files: list[RequiredFile] = []
    security: Security | None = None
    ui: Ui | None = None
    thresholds: Thresholds = Thresholds()
    attestations: Attestations = Attestations()
    waivers: list[Waiver] = []
    not_applicable: list[NotApplicable] = []
    rollback: Rollback = Rollback()
    signing: Signing | None = None
    notifications: list[Notification] = []
    approval: Approval = Approval()
    local: Local | None = None
    monitoring: Monitoring | None = None
    watch: Watch = Watch()
    performance: Performance | None = None
    rollout: Rollout = Rollout()
    load_balancer: LoadBalancer | None = None
    source: Path = Field(ROOT, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _strict(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("strict") is None:
            return data | {"strict": data.get("local") is None and data.get("name") != "local"}
        return data

    @field_validator("hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any, info: ValidationInfo) -> Any:
        """The hosts given inline or read from the inventory, each with the environment's ssh settings."""
        if any(key not in info.data for key in ("inventory", "ssh", "deadlines")):
            return value  # the key that is wrong is reported by itself
        path, ssh = info.data["inventory"], info.data["ssh"]
        defaults = {"ssh": ssh, "deadlines": info.data["deadlines"]} | ({"connect_timeout": ssh.connect_timeout} if ssh.connect_timeout else {})
        if path is not None:
            if value:
                raise ValueError("give the hosts either inline or as `inventory`, not both")
            found = inventory.read(path, ssh.user or getpass.getuser())
            return [_inventory_host(path, defaults | host) for host in found]
        if not value:
            raise ValueError("give at least one host, inline or as `inventory: <an Ansible inventory file>`")
        if not isinstance(value, list):
            return value
        return [defaults | host if isinstance(host, dict) else host for host in value]

    @field_validator("waivers", "not_applicable")
    @classmethod
    def _known_scenarios(cls, value: list) -> list:
        """A waiver or declaration must name a scenario the features define, as they spell it."""
        for entry in value:
            if entry.scenario not in scenarios.names():
                raise ValueError(f"no scenario is named {entry.scenario!r} (see the Scenario lines in features/)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Environment":
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"hosts: names must be unique, got {names}")
        if not self.hosts_with("app"):
            raise ValueError("hosts: at least one host needs the `app` role")
        if self.database.url is None and (self.local is None or self.local.postgres_port is None):
            raise ValueError("database.url is required unless `local.postgres_port` runs a local cluster")
        if self.database.backup_host and self.database.backup_host not in names:
            raise ValueError(f"database.backup_host {self.database.backup_host!r} is not one of the hosts {names}")
        if any(s.manager == "supervisord" for s in self.services) and not (self.supervisor or self.local):
            raise ValueError("services managed by supervisord need a `supervisor` section")
        measured = self.performance and self.performance.service
        if measured and measured not in {s.name for s in self.services}:
            raise ValueError(f"performance.service {measured!r} is not one of the services "
                             f"{[s.name for s in self.services]}")
        if self.performance and not self.services:
            raise ValueError("performance needs a service whose processes it measures")
        self._balanced()
        exposed = self.security and self.security.listening and self.security.listening.exposed
        unknown = sorted({e.host for e in exposed or [] if e.host is not None} - set(names))
        if unknown:
            raise ValueError(f"security.listening.exposed names hosts {unknown} that are not among the hosts {names}")
        self._monitoring()
        return self

    def _balanced(self) -> None:
        """The load balancer's servers are the environment's services, and nothing else drains them."""
        lb = self.load_balancer
        if lb is None:
            if self.local and self.local.haproxy:
                raise ValueError("local.haproxy needs a `load_balancer` section (its backend and servers)")
            if any(d.kind == "haproxy" for d in self.dependencies):
                raise ValueError("a haproxy dependency needs a `load_balancer` section (its runtime API socket)")
            return
        services = {s.name for s in self.services}
        unknown = sorted({s.service for s in lb.servers} - services)
        if unknown:
            raise ValueError(f"load_balancer.servers name services {unknown} that are not among the services "
                             f"{sorted(services)}")
        placed = [f"{s.service} on {s.host}" if s.host else s.service for s in lb.servers]
        for label, values in (("name", [s.name for s in lb.servers]), ("service (or service and host)", placed)):
            if len(set(values)) != len(values):
                raise ValueError(f"load_balancer.servers: each server needs its own {label}, got {values}")
        hosts = {h.name for h in self.hosts}
        strangers = sorted({s.host for s in lb.servers if s.host is not None} - hosts)
        if strangers:
            raise ValueError(f"load_balancer.servers name hosts {strangers} that are not among the hosts {sorted(hosts)}")
        if any(s.host is None for s in lb.servers) and any(s.host for s in lb.servers):
            raise ValueError("load_balancer.servers: give every server its `host`, or none")
        if self.rollout.drain or self.rollout.restore:
            raise ValueError("give either `load_balancer` (drained through its runtime API) or "
                             "`rollout.drain`/`rollout.restore` commands, not both")

    def _monitoring(self) -> None:
        if self.local and self.local.prometheus and not (self.monitoring and self.monitoring.jobs):
            raise ValueError("local.prometheus needs a `monitoring` section with the `jobs` it scrapes")
        if self.local and self.local.prometheus and not self.monitoring.url.startswith("http://127.0.0.1:"):
            raise ValueError(f"local.prometheus serves monitoring.url on this machine: write it as "
                             f"http://127.0.0.1:PORT, not {self.monitoring.url!r}")
        limits = {"memory": "max_memory_mb", "cpu": "max_cpu_percent"}
        for alert, key in limits.items():
            if self.monitoring and alert in self.monitoring.alerts and not (
                    self.performance and getattr(self.performance, key)):
                raise ValueError(f"monitoring.alerts: the {alert} alert needs its limit, performance.{key}")

    @property
    def python(self) -> str:
        if self.app.python:
            return self.app.python
        return sys.executable if self.local else "python3"

    def hosts_with(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def hosts_with_any(self, roles: list[str]) -> list[Host]:
        return [h for h in self.hosts if set(roles) & set(h.roles)]

    @property
    def backup_host(self) -> Host:
        return next(h for h in self.hosts if h.name == (self.database.backup_host or self.hosts[0].name))

    def secret_values(self) -> Iterator[tuple[str, str]]:
        """Every (key, template) in this environment that holds a secret reference."""
        yield from _walk(self.model_dump(), ())


def _walk(data: Any, path: tuple) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _walk(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk(value, path + (i,))
    elif isinstance(data, str) and references(data):
        yield _key(path), data


def _inventory_host(path: Path, data: dict[str, Any]) -> Host:
    """A host of the inventory; `ConfigError` naming the inventory and the host when it does not fit."""
    try:
        return Host(**data)
    except ValidationError as e:
        problems = "; ".join(f"{_key(tuple(item['loc']))}: {item['msg']}" for item in e.errors())
        raise ConfigError(f"{path}: host {data['name']}: {problems}") from None

"""The hosts a run reaches and how `ssh://` hosts are logged in to."""

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from runbook.config.base import Model, Name
from runbook.config.deadlines import Deadlines


def _ssh_path(value: Path) -> Path:
    if '"' in str(value) or "\n" in str(value):
        raise ValueError("a path for ssh cannot hold a double quote or a line break")
    return value.expanduser()


SshPath = Annotated[Path, AfterValidator(_ssh_path)]


FORKS = 20
"""Hosts worked on at once unless `ssh.forks` says otherwise. Ansible's default is 5; bench/fleet.py
measured 20 better: preflight on 50 hosts with 50 ms added latency took 14.9 s at 20, 20.7 s at 5."""


class Ssh(Model):
    """How `ssh://` hosts are reached: rendered into a private ssh client config (`runbook/hosts/ssh.py`)."""

    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
    """The login where neither the host's spec nor its inventory (`ansible_user`) names one."""
    identity_file: SshPath | None = None
    """The private key to log in with (and no other); omitted: ssh's own keys and agent."""
    known_hosts: SshPath = Field(Path("~/.ssh/known_hosts"), validate_default=True)
    strict_host_key_checking: bool = True
    """True: a host whose key is not in `known_hosts` is refused. False: a new host's key is added on first
    contact (`accept-new`). A key that differs from the known one is refused either way."""
    connect_timeout: int | None = Field(None, ge=1, le=120)
    """Every host's `connect_timeout` unless the host gives its own."""
    control_persist_seconds: int = Field(60, ge=1, le=3600)
    """How long an idle connection stays open for the next command to reuse."""
    forks: int = Field(FORKS, ge=1, le=500)
    """How many hosts are worked on at once (Ansible's `forks`): fifty hosts do not open fifty connections at
    once unless asked."""


class Host(Model):
    """A host as a testinfra host spec (`local://`, `ssh://user@host:port`) with its roles."""

    name: Name
    spec: str = Field(pattern=r"^(local|ssh|paramiko|docker)://")
    roles: list[Name] = ["app"]
    connect_timeout: int = Field(5, ge=1, le=120)
    ssh: Ssh = Field(default_factory=Ssh, exclude=True)
    """The environment's `ssh` section, given to each of its hosts that has no `ssh` of its own."""
    deadlines: Deadlines = Field(default_factory=Deadlines, exclude=True)
    """The environment's `deadlines`: how long a command on this host may take."""
    vars: dict[str, Any] = {}
    """The host's own variables (from an inventory): placeholders in `rollout` commands and URLs."""

    @property
    def address(self) -> str:
        """The address the host is reached at: `ansible_host` when given, else the spec's host name."""
        if "ansible_host" in self.vars:
            return str(self.vars["ansible_host"])
        return urlsplit(self.spec).hostname or "127.0.0.1"

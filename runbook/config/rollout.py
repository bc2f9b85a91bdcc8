"""How a release reaches the app hosts, and how a rollback treats the database."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from runbook.config.base import Command, Model, Name


Batch = int | Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?%$")]


class Rollout(Model):
    """How a release reaches the app hosts.

    `maintenance` is the runbook's order: stop, switch, migrate, start (the app does not answer
    meanwhile). `rolling` migrates first (only backward-compatible migrations, see the README), then
    switches and gracefully reloads the app, so the old workers serve until the new ones are up.
    Hosts go in batches as Ansible's `serial` (a count, a percentage, or a list of them; the last
    entry repeats), and the rollout stops when a batch's failed hosts exceed `max_fail_percentage`.
    """

    strategy: Literal["maintenance", "rolling"] = "maintenance"
    serial: Batch | list[Batch] = "100%"
    max_fail_percentage: float = Field(0, ge=0, le=100)
    host_url: str | None = None
    """Each app host's own address for its health check during the rollout, a Jinja2 template such as
    `http://{{ address }}:8000` (`name`, `address` and the host's inventory variables); the paths of
    `endpoints.health` and `endpoints.status` are appended. Omitted: `endpoints` themselves."""
    drain: Command | None = None
    """Run on the machine running the runbook to take a host out of the load balancer before its
    switch (the same placeholders as `host_url`). A load balancer with a runtime API is the
    environment's `load_balancer` section instead, which takes each instance out in turn."""
    restore: Command | None = None
    """...and to put it back once it answers healthy on the new release."""

    @field_validator("serial")
    @classmethod
    def _above_zero(cls, serial: Batch | list[Batch]) -> Batch | list[Batch]:
        for size in serial if isinstance(serial, list) else [serial]:
            if (float(size[:-1]) if isinstance(size, str) else size) <= 0:
                raise ValueError(f"{size!r} is not a batch size above 0")
        if serial == []:
            raise ValueError("give at least one batch size")
        return serial


class BalancedServer(Model):
    """One server of the load balancer's backend: an instance of the app, one of its services."""

    name: Name
    """The server's name in the backend (HAProxy's `server <name>`)."""
    service: Name
    """The app's service that runs this instance."""
    address: str = Field(pattern=r"^[^:/\s]+:[0-9]{1,5}$")
    """`host:port` where the instance answers by itself (checked there before it takes traffic again)."""
    host: Name | None = None
    """The host the instance runs on, where the service runs on several (one server per host); omitted,
    the server is the service's on every host."""


class LoadBalancer(Model):
    """A load balancer in front of the app's instances, drained and restored through its runtime API.

    With `rollout.strategy: rolling`, the instances on a batch's hosts are taken one at a time: drained,
    waited for until their sessions end, restarted on the new release, checked on their own address,
    returned (`ready`), and waited for until the load balancer sees them UP, before the next one.
    """

    kind: Literal["haproxy"] = "haproxy"
    socket: Path
    """HAProxy's runtime API (`stats socket ... level admin`) on the machine running the runbook."""
    backend: Name
    servers: list[BalancedServer] = Field(min_length=1)
    timeout: float = Field(5, gt=0, le=60)
    """Seconds one command to the runtime API may take."""

    def server_of(self, service: str, host: str) -> BalancedServer | None:
        """The server of the service's instance on `host`."""
        return next((s for s in self.servers if s.service == service and s.host in (None, host)), None)


class Rollback(Model):
    restore_database: bool = False
    """Restore the pre-deploy backup instead of running down migrations (discards later writes)."""
    protected_tables: list[str] = []
    """Tables whose rows from before the deploy must all be there, unchanged, after a rollback."""

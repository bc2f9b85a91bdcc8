"""What Step 5 holds each host to: the sockets it may listen on beyond loopback, its secret files, the app's
audit log."""

from ipaddress import ip_address
from typing import Annotated

from pydantic import Field, field_validator

from runbook.config.base import Model
from runbook.config.checks import RequiredFile

Port = Annotated[int, Field(ge=1, le=65535)]


class Exposed(Model):
    """A socket a host may listen on beyond loopback."""

    port: Port
    host: str | None = None
    """The environment's host that may listen on it (default: every host)."""
    address: str | None = None
    """The address it may listen on, e.g. 0.0.0.0, :: or 10.0.0.5 (default: any address)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (e.g. 0.0.0.0, ::, 10.0.0.5)") from None


class Listening(Model):
    """Every listening TCP socket must be on loopback (127.0.0.0/8, ::1) unless it is `exposed`."""

    exposed: list[Exposed] = []
    only_ports: list[Port] | None = None
    """Judge only the sockets on these ports: for a host shared with services the environment does not own
    (a local:// host sees the whole machine). Default: every socket."""


class Audit(Model):
    log: str = Field(min_length=1)
    """The app's audit log on each app host: one JSON event a line (time, actor, action, subject, request_id)."""


class Security(Model):
    listening: Listening | None = None
    secret_files: list[RequiredFile] = []
    """Besides the app's config files in the live release, which must keep the mode `app.config` gives them."""
    audit: Audit | None = None

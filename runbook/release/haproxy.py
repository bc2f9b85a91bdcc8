"""HAProxy's runtime API (its `stats socket ... level admin`): the commands, built by pure functions, one
call with a deadline, the servers' states read from `show stat`, and a server drained or made ready,
with the waits that make either safe.

    >>> set_state("app", "web-a", "drain")
    'set server app/web-a state drain'
"""

import csv
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from runbook.config import LoadBalancer
from runbook.errors import ActionFailed

State = Literal["ready", "drain", "maint"]
SHOW_STAT = "show stat"
POLL_SECONDS = 0.2
T = TypeVar("T")


class ServerStat(BaseModel):
    """One server of a backend as `show stat` reports it."""

    backend: str
    name: str
    status: str
    """`UP`, `DOWN`, `DRAIN`, `MAINT`, `NOLB`, or a transition such as `UP 1/2`."""
    sessions: int
    """Current sessions (`scur`): requests the server is answering now."""
    check: str = ""
    """The last health check's status (e.g. `L7OK`, `L4CON`)."""

    @property
    def moving(self) -> bool:
        """Between two states: `UP 1/2`, a check failed on a server still UP; `DOWN 1/2`, one passed on a
        server still DOWN. The next checks settle it either way."""
        return "/" in self.status

    @property
    def sessions_text(self) -> str:
        return f"{self.sessions} session{'' if self.sessions == 1 else 's'}"

    def __str__(self) -> str:
        check = f", check {self.check}" if self.check else ""
        return f"{self.name} {self.status} ({self.sessions_text}{check})"


def set_state(backend: str, server: str, state: State) -> str:
    return f"set server {backend}/{server} state {state}"


def ask(path: Path, command: str, timeout: float) -> str:
    """Send one command to the runtime API and read its whole answer, within `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
                conn.settimeout(max(0.01, deadline - time.monotonic()))
    except socket.timeout:
        raise ActionFailed(f"HAProxy runtime API {path}: no complete answer to {command!r} within {timeout:g} s") from None
    except OSError as e:
        raise ActionFailed(f"HAProxy runtime API {path} does not answer: {e.strerror or e}") from None
    return b"".join(chunks).decode(errors="replace")


def parse_stat(text: str) -> list[ServerStat]:
    """The servers (not the frontends' or backends' own rows) in `show stat`'s CSV answer."""
    rows = csv.DictReader(text.lstrip("# ").splitlines())
    return [ServerStat(backend=row["pxname"], name=row["svname"], status=row["status"],
                       sessions=int(row["scur"] or 0), check=row.get("check_status") or "")
            for row in rows if row.get("svname") not in (None, "FRONTEND", "BACKEND")]


def servers(lb: LoadBalancer) -> list[ServerStat]:
    """The backend's servers, as HAProxy sees them now."""
    return [s for s in parse_stat(ask(lb.socket, SHOW_STAT, lb.timeout)) if s.backend == lb.backend]


def settled(lb: LoadBalancer, seconds: float) -> list[ServerStat]:
    """The backend's servers once none is moving between states, or as they are after `seconds`: one late
    answer to a health check (a busy instance just started) is not yet a server going down."""
    return _poll(lambda: servers(lb), lambda found: not any(s.moving for s in found), seconds)


def server(lb: LoadBalancer, name: str) -> ServerStat:
    found = [s for s in servers(lb) if s.name == name]
    if not found:
        raise ActionFailed(f"HAProxy backend {lb.backend} has no server {name}")
    return found[0]


def order(lb: LoadBalancer, name: str, state: State) -> str:
    """Set the server's administrative state; HAProxy's refusal (any answer at all) is an `ActionFailed`."""
    command = set_state(lb.backend, name, state)
    said = ask(lb.socket, command, lb.timeout).strip()
    if said:
        raise ActionFailed(f"HAProxy refused {command!r}: {said}")
    return command


def _poll(read: Callable[[], T], done: Callable[[T], bool], seconds: float) -> T:
    """`read()` every `POLL_SECONDS` until what it reads is `done`, for at most `seconds`: the last reading."""
    return Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(POLL_SECONDS),
                    retry=retry_if_result(lambda value: not done(value)),
                    retry_error_callback=lambda state: state.outcome.result())(read)


def _wait(lb: LoadBalancer, name: str, done: Callable[[ServerStat], bool], what: str, seconds: float) -> ServerStat:
    """Poll the server until `done(stat)`, for at most `seconds`; `ActionFailed` saying how it was then."""
    stat = _poll(lambda: server(lb, name), done, seconds)
    if not done(stat):
        raise ActionFailed(f"HAProxy {lb.backend}/{name}: {what} within {seconds:g} s "
                           f"(deadlines.drain): it is {stat.status} with {stat.sessions_text}")
    return stat


def drain(lb: LoadBalancer, name: str, seconds: float) -> str:
    """Take the server out of the rotation (no new sessions) and wait until its sessions reach zero."""
    command = order(lb, name, "drain")
    started = time.monotonic()
    _wait(lb, name, lambda s: s.sessions == 0, "its sessions did not reach zero", seconds)
    return f"{command}: no session left after {time.monotonic() - started:.1f} s"


def ready(lb: LoadBalancer, name: str, seconds: float) -> str:
    """Return the server to the rotation and wait until HAProxy's health checks see it UP."""
    command = order(lb, name, "ready")
    started = time.monotonic()
    _wait(lb, name, lambda s: s.status == "UP", "it was not seen UP", seconds)
    return f"{command}: UP after {time.monotonic() - started:.1f} s"

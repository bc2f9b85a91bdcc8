"""Notifications of a run (runbook Steps 6, 16 and 17): a deploy says it started (maintenance begins),
succeeded, rolled back or failed, to each of the environment's `notifications`.

Each kind receives what its service expects: a Slack incoming webhook `{"text": ...}`, a generic
webhook every field of the message, a status page component `{"component": {"status": ...}}` (PATCH).
Every request is bounded by the notification's `timeout` and tried up to `attempts` times while the
endpoint does not answer or answers 5xx; a 4xx is final. `send` never raises for a delivery problem:
each outcome is a `Delivery` for the record, with the URL's secrets and the error redacted, and
`required_failures` names the failed ones the deploy must stop on.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from runbook.config import Environment, Notification
from runbook.errors import ConfigError
from runbook.checks.probes import request_error
from runbook.secrets import expand, redact
from runbook.times import seconds
from runbook import http

Event = Literal["started", "succeeded", "aborted", "rolled_back", "failed"]
"""aborted: the deploy stopped before changing anything; failed: it failed and could not be put back."""
EVENTS: tuple[str, ...] = get_args(Event)
STATUSPAGE: dict[str, str] = {
    "started": "under_maintenance",
    "succeeded": "operational",
    "aborted": "operational",
    "rolled_back": "operational",
    "failed": "major_outage",
}
"""The status page component's status after each event."""
RETRY_WAIT = 0.2
"""Seconds between two attempts of one notification."""


@dataclass(frozen=True)
class Message:
    """What a run says about itself; `text` is one sentence for people."""

    event: Event
    environment: str
    version: str
    run_id: str
    operator: str
    text: str
    link: str | None = None
    """Where the run's record can be read."""

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r} (expected one of {', '.join(EVENTS)})")


def compose(
    event: Event, environment: str, version: str, run_id: str, operator: str, reason: str = "", link: str | None = None
) -> Message:
    """A message whose text reads e.g. "Deploy of 1.2.0 to prod rolled back: Health checks failed: ..."."""
    text = f"Deploy of {version} to {environment} {event.replace('_', ' ')}" + (f": {reason}" if reason else "")
    return Message(event, environment, version, run_id, operator, text, link)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one notification; never holds the resolved URL or a secret."""

    name: str
    kind: str
    event: str
    ok: bool
    attempts: int
    status: int | None
    """The last HTTP status answered, None when there was no answer."""
    error: str
    """Why it was not delivered (redacted); empty when it was."""
    seconds: float

    def as_record(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        outcome = f"answered {self.status}" if self.ok else f"not delivered: {self.error}"
        tries = f"{self.attempts} attempt{'' if self.attempts == 1 else 's'}"
        return f"{self.kind} notification {self.name} of {self.event} {outcome} ({tries}, {self.seconds:.1f} s)"


def send(env: Environment, message: Message) -> list[Delivery]:
    """Deliver `message` to every notification of the environment, in order."""
    return [deliver(notification, message) for notification in env.notifications]


def required_failures(deliveries: Iterable[Delivery], env: Environment) -> list[str]:
    """One line per failed delivery of a `required` notification: the deploy stops on these."""
    required = {n.name for n in env.notifications if n.required}
    return [f"required {d}" for d in deliveries if not d.ok and d.name in required]


def payload(kind: str, message: Message) -> tuple[str, dict[str, Any]]:
    """The HTTP method and JSON document a notification of `kind` receives; secrets in the text are masked."""
    return PAYLOADS[kind](message)


def deliver(notification: Notification, message: Message) -> Delivery:
    """Send one notification, retried on no answer or a 5xx; the outcome, whatever happened."""
    started = time.monotonic()
    try:
        url = expand(notification.url)  # first: its secrets are then known to the mask of the body
    except ConfigError as e:
        return _outcome(notification, message, 0, None, f"its URL cannot be resolved: {e}", started)
    method, body = payload(notification.kind, message)
    retrying = Retrying(
        stop=stop_after_attempt(notification.attempts),
        wait=wait_fixed(RETRY_WAIT),
        retry=retry_if_exception(lambda e: isinstance(e, _Failed) and e.transient),
        reraise=True,
    )
    try:
        status, error = retrying(_attempt, method, url, body, notification.timeout), ""
    except _Failed as e:
        status, error = e.status, e.reason
    return _outcome(notification, message, retrying.statistics["attempt_number"], status, error, started)


def _outcome(
    notification: Notification, message: Message, attempts: int, status: int | None, error: str, started: float
) -> Delivery:
    return Delivery(
        notification.name, notification.kind, message.event, not error, attempts, status,
        redact(error), seconds(time.monotonic() - started),
    )


class _Failed(Exception):
    """An attempt that was not delivered; `transient` ones (no answer, 5xx) are tried again."""

    def __init__(self, reason: str, status: int | None = None, transient: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.status, self.transient = reason, status, transient


def _attempt(method: str, url: str, body: dict[str, Any], timeout: float) -> int:
    try:
        response = http.request(method, url, json=body, timeout=timeout, allow_redirects=False)
    except (requests.ConnectionError, requests.Timeout) as e:
        raise _Failed(f"did not answer: {request_error(e, timeout)}") from None
    except requests.RequestException as e:
        raise _Failed(f"cannot be sent: {request_error(e, timeout)}", transient=False) from None
    status = response.status_code
    if not 200 <= status < 300:
        raise _Failed(f"answered {status} {response.reason}".rstrip(), status, transient=status >= 500)
    return status


def _fields(message: Message) -> dict[str, Any]:
    return {key: redact(value) if isinstance(value, str) else value for key, value in asdict(message).items()}


def _slack(message: Message) -> tuple[str, dict[str, Any]]:
    fields = _fields(message)
    return "POST", {"text": f"{fields['text']}\n{fields['link']}" if fields["link"] else fields["text"]}


def _webhook(message: Message) -> tuple[str, dict[str, Any]]:
    return "POST", _fields(message)


def _statuspage(message: Message) -> tuple[str, dict[str, Any]]:
    return "PATCH", {"component": {"status": STATUSPAGE[message.event]}}


PAYLOADS: dict[str, Callable[[Message], tuple[str, dict[str, Any]]]] = {
    "slack": _slack,
    "webhook": _webhook,
    "statuspage": _statuspage,
}

"""What the demo app's dependency modules share: JSON calls to the HTTP services it depends on (the
auth service, the external API), and the refusal that ends a request with an error status."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any

TIMEOUT_SECONDS = 3
"""Each call's deadline: connecting, sending and reading the whole answer."""
MAX_ANSWER_BYTES = 256 * 1024


class Refusal(Exception):
    """Ends a request of a dependency module's handler with `status` and `{"error": message}`."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unavailable(Exception):
    """The service did not answer, or not with JSON: the message says which and why (never a secret)."""


def call(method: str, url: str, payload: dict[str, Any] | None = None, token: str | None = None,
         timeout: float = TIMEOUT_SECONDS) -> tuple[int, dict[str, Any]]:
    """The status and JSON object the service answered with; any status, as long as the body is JSON."""
    headers = {"Accept": "application/json"}
    data = None
    if payload is not None:
        data, headers["Content-Type"] = json.dumps(payload).encode(), "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(MAX_ANSWER_BYTES)
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise Unavailable(f"{method} {url} did not answer: {reason}") from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise Unavailable(f"{method} {url} answered {status} without JSON") from None
    if not isinstance(answer, dict):
        raise Unavailable(f"{method} {url} answered {status} with JSON that is not an object")
    return status, answer

"""What the local stack's two small services share: JSON answers and request bodies, as WSGI."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

MAX_BODY_BYTES = 16 * 1024

Handler = Callable[[dict[str, Any]], tuple[HTTPStatus, dict[str, Any]]]


def json_body(environ: dict[str, Any]) -> dict[str, Any] | None:
    """The request's JSON object, or None when it is missing, too long or not an object."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY_BYTES:
        return None
    try:
        payload = json.loads(environ["wsgi.input"].read(length))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def application(routes: dict[tuple[str, str], Handler]) -> Callable[..., list[bytes]]:
    """A WSGI application answering `(method, path)` with its handler's status and JSON."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        handler = routes.get((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
        status, payload = handler(environ) if handler else (HTTPStatus.NOT_FOUND, {"error": "not found"})
        body = json.dumps(payload).encode()
        start_response(f"{status.value} {status.phrase}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app

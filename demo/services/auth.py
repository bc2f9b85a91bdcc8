"""The authentication service of the local stack: checks a username and password for the demo app.

    gunicorn --chdir demo/services --bind 127.0.0.1:8721 --env AUTH_CONFIG=<file> auth:application

AUTH_CONFIG names a dotenv file (mode 0600, written by `invoke local.up`) with AUTH_USERNAME,
AUTH_PASSWORD and AUTH_SECRET; it is read on every request, so a changed password applies at once.
`GET /health` answers `{"status": "ok"}` when that file is readable and complete.
`POST /v1/verify` `{username, password}`, with `Authorization: Bearer <AUTH_SECRET>`, answers
`{"valid": true|false}`; 401 without the shared secret, 400 for a malformed body.
"""

from __future__ import annotations

import hmac
import os
from http import HTTPStatus
from typing import Any

from dotenv import dotenv_values

from jsonwsgi import application as json_app, json_body

KEYS = ("AUTH_USERNAME", "AUTH_PASSWORD", "AUTH_SECRET")


class Misconfigured(Exception):
    """The service's configuration file is missing or incomplete."""


def _config() -> dict[str, str]:
    path = os.environ.get("AUTH_CONFIG")
    if not path or not os.path.isfile(path):
        raise Misconfigured(f"AUTH_CONFIG does not name a readable file: {path!r}")
    values = dotenv_values(path, interpolate=False)
    missing = [key for key in KEYS if not values.get(key)]
    if missing:
        raise Misconfigured(f"{path} does not set {', '.join(missing)}")
    return {key: values[key] for key in KEYS}


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def health(environ: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
    try:
        _config()
    except Misconfigured as e:
        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "error", "error": str(e)}
    return HTTPStatus.OK, {"status": "ok"}


def verify(environ: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
    try:
        config = _config()
    except Misconfigured as e:
        return HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)}
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(token.strip(), config["AUTH_SECRET"]):
        return HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong shared secret"}
    payload = json_body(environ)
    if payload is None:
        return HTTPStatus.BAD_REQUEST, {"error": "the body must be a JSON object with username and password"}
    valid = _same(payload.get("username"), config["AUTH_USERNAME"]) & _same(payload.get("password"),
                                                                           config["AUTH_PASSWORD"])
    return HTTPStatus.OK, {"valid": valid}


application = json_app({("GET", "/health"): health, ("POST", "/v1/verify"): verify})

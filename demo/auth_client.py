"""Logins checked by the authentication service (APP_AUTH_URL) instead of the app's own users table.

The app presents the shared secret APP_AUTH_SECRET as a bearer token; the service answers
`{"valid": true|false}` for a username and password.
"""

from __future__ import annotations

import settings
import upstream


def configured() -> bool:
    return settings.get("APP_AUTH_URL") is not None


def verify(username: str, password: str) -> bool:
    """Whether the service accepts the credentials; `upstream.Unavailable` when it cannot say."""
    url = settings.get("APP_AUTH_URL").rstrip("/") + "/v1/verify"
    credentials = {"username": username, "password": password}
    status, answer = upstream.call("POST", url, credentials, settings.get("APP_AUTH_SECRET"))
    if status != 200 or not isinstance(answer.get("valid"), bool):
        raise upstream.Unavailable(f"POST {url} answered {status}: {answer.get('error', 'no verdict')}")
    return answer["valid"]

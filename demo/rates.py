"""Exchange rates from the external API (APP_API_URL), passed on to the app's clients."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import settings
import upstream


def configured() -> bool:
    return settings.get("APP_API_URL") is not None


def latest() -> dict[str, Any]:
    """The external API's `/v1/rates` answer; `upstream.Unavailable` when it fails or is not 200."""
    url = settings.get("APP_API_URL").rstrip("/") + "/v1/rates"
    status, answer = upstream.call("GET", url)
    if status != 200 or not isinstance(answer.get("rates"), dict):
        raise upstream.Unavailable(f"GET {url} answered {status}: {answer.get('error', 'no rates')}")
    return {"base": answer.get("base"), "rates": answer["rates"], "source": url}


def get_rates(request: Any) -> tuple[HTTPStatus, dict[str, Any]]:
    """`GET /api/rates`: 502 when the external API fails, 503 when none is configured."""
    if not configured():
        raise upstream.Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "APP_API_URL is not configured")
    try:
        return HTTPStatus.OK, latest()
    except upstream.Unavailable as error:
        raise upstream.Refusal(HTTPStatus.BAD_GATEWAY, f"the external API failed: {error}") from None

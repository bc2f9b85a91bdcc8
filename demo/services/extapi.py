"""The external API of the local stack: a separate process the demo app calls for exchange rates.

    gunicorn --chdir demo/services --bind 127.0.0.1:8720 extapi:application

`GET /health` answers `{"status": "ok"}`; `GET /v1/rates` answers
`{"base": "EUR", "rates": {...}, "time": "<UTC>"}`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from jsonwsgi import application as json_app

RATES = {"USD": 1.08, "GBP": 0.86, "CHF": 0.94, "JPY": 162.5}


def health(environ: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
    return HTTPStatus.OK, {"status": "ok"}


def rates(environ: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return HTTPStatus.OK, {"base": "EUR", "rates": RATES, "time": now}


application = json_app({("GET", "/health"): health, ("GET", "/v1/rates"): rates})

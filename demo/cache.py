"""A cache in Redis (APP_REDIS_URL): values written with a time to live, read back until it ends.

`PUT /api/cache/<key>` `{"value", "ttl_seconds"}` stores the text value for that many seconds (1 to
86400); `GET /api/cache/<key>` answers `{"key", "value", "ttl_seconds"}` (the seconds left), or 404
once it has expired. Keys are stored under the prefix `demo:cache:`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import redis

import settings
import upstream

PREFIX = "demo:cache:"
TIMEOUT_SECONDS = 3
MAX_TTL_SECONDS = 86_400
MAX_VALUE = 64 * 1024
KEY = r"([A-Za-z0-9._-]{1,128})"
"""The route's key pattern."""
_clients: dict[str, redis.Redis] = {}


def client() -> redis.Redis:
    """This process's client (its connection pool) for APP_REDIS_URL, every call bounded by TIMEOUT_SECONDS."""
    url = settings.get("APP_REDIS_URL")
    if url is None:
        raise upstream.Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "APP_REDIS_URL is not configured")
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS,
                                             socket_connect_timeout=TIMEOUT_SECONDS, decode_responses=True)
    return _clients[url]


def _unavailable(error: redis.RedisError) -> upstream.Refusal:
    return upstream.Refusal(HTTPStatus.SERVICE_UNAVAILABLE, f"cache unavailable: {str(error) or type(error).__name__}")


def put(request: Any) -> tuple[HTTPStatus, dict[str, Any]]:
    payload = request.json()
    value, ttl = payload.get("value"), payload.get("ttl_seconds")
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        raise upstream.Refusal(HTTPStatus.BAD_REQUEST, f"'value' must be a string of at most {MAX_VALUE} characters")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL_SECONDS:
        raise upstream.Refusal(HTTPStatus.BAD_REQUEST, f"'ttl_seconds' must be a whole number from 1 to {MAX_TTL_SECONDS}")
    key = request.args[0]
    try:
        client().set(PREFIX + key, value, ex=ttl)
    except redis.RedisError as error:
        raise _unavailable(error) from None
    return HTTPStatus.OK, {"key": key, "ttl_seconds": ttl}


def get(request: Any) -> tuple[HTTPStatus, dict[str, Any]]:
    key = request.args[0]
    try:
        with client().pipeline() as pipe:
            value, left = pipe.get(PREFIX + key).pttl(PREFIX + key).execute()
    except redis.RedisError as error:
        raise _unavailable(error) from None
    if value is None:
        raise upstream.Refusal(HTTPStatus.NOT_FOUND, f"no cached value for {key!r} (never written, or expired)")
    return HTTPStatus.OK, {"key": key, "value": value, "ttl_seconds": max(left, 0) / 1000}

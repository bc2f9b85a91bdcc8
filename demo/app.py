"""The demo WSGI application that the runbook deploys and verifies.

Run it with ``gunicorn --chdir <app dir> app:application``. Configuration is read
once at import (see settings.py and README.md), so without DATABASE_URL the app
does not start. Every response is JSON except a file download.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import psycopg

import auth_client
import cache
import jobs
import pages
import processes
import rates
import settings
import tokens
import upstream

logger = logging.getLogger("demo")

settings.load_env_file()

# Imported once .env is read: prometheus_client chooses its multiprocess mode on import, from
# PROMETHEUS_MULTIPROC_DIR.
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

DATABASE_URL = settings.database_url()
SECRET_KEY = settings.get("APP_SECRET_KEY")
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = settings.get("APP_ADMIN_PASSWORD")
BANNER = settings.get("APP_BANNER")
UPLOAD_DIR = settings.APP_DIR / (settings.get("APP_UPLOAD_DIR") or "uploads")
UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
AUDIT_LOG = settings.APP_DIR / settings.get("APP_AUDIT_LOG") if settings.get("APP_AUDIT_LOG") else None
VERSION_FILE = settings.APP_DIR / "VERSION"
VERSION = (VERSION_FILE.read_text(encoding="utf-8").strip() if VERSION_FILE.is_file() else "") or "0.0.0-dev"

MAX_JSON_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_REQUEST_ID = 128

REGISTRY = CollectorRegistry()
"""This process's metrics; with PROMETHEUS_MULTIPROC_DIR, every worker's are read from that folder instead."""
REQUESTS = Counter("demo_http_requests", "HTTP requests answered, by status", ["status"], registry=REGISTRY)
DURATION = Histogram("demo_http_request_duration_seconds", "Time taken to answer an HTTP request, by handler",
                     ["handler"], registry=REGISTRY)
DATABASE_FAILURES = Counter("demo_database_connection_failures", "Attempts to connect to the database that failed",
                            registry=REGISTRY)
REGISTRY.register(processes.ServiceProcesses())


def connect() -> psycopg.Connection:
    """A connection to the app's database; a failure to open one is counted (`/metrics`)."""
    try:
        return settings.connect(DATABASE_URL)
    except psycopg.OperationalError:
        DATABASE_FAILURES.inc()
        raise

_admin_lock = threading.Lock()
_admin_synced = False


class HttpError(Exception):
    """Ends a request with a JSON ``{"error": message}`` response."""

    def __init__(self, status: HTTPStatus, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: HTTPStatus, payload: dict[str, Any], headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=list(headers))


@dataclass(frozen=True)
class Request:
    environ: dict[str, Any]
    args: tuple[str, ...]

    def body(self, limit: int) -> bytes:
        """The request body; 413 when it is longer than ``limit`` bytes."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid Content-Length") from None
        if length > limit:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body exceeds {limit} bytes")
        return self.environ["wsgi.input"].read(length) if length > 0 else b""

    def json(self) -> dict[str, Any]:
        try:
            payload = json.loads(self.body(MAX_JSON_BYTES))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "malformed JSON body") from None
        if not isinstance(payload, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "JSON body must be an object")
        return payload

    def query(self, name: str) -> str:
        return parse_qs(self.environ.get("QUERY_STRING", "")).get(name, [""])[0]


Handler = Callable[[Request], Response]


def audit(request: Request, actor: str, action: str, subject: str) -> None:
    """Append an audit event to APP_AUDIT_LOG, one JSON line, with the request's X-Request-Id; a failure
    to write it fails the request."""
    if AUDIT_LOG is None:
        return
    event = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "request_id": request.environ.get("HTTP_X_REQUEST_ID", "")[:MAX_REQUEST_ID] or None,
    }
    AUDIT_LOG.parent.mkdir(parents=True, exist_ok=True)
    with AUDIT_LOG.open("a", encoding="utf-8") as log:
        log.write(json.dumps(event) + "\n")


def _text_field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"'{name}' must be a non-empty string")
    return value


def _secret_key() -> str:
    if SECRET_KEY is None:
        raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "APP_SECRET_KEY is not configured")
    return SECRET_KEY


def _sync_admin(conn: psycopg.Connection) -> None:
    """Make the admin user match APP_ADMIN_PASSWORD, once per process; the row is only written when it
    is missing or its password changed, so logging in never rewrites user data."""
    global _admin_synced
    if ADMIN_PASSWORD is None or _admin_synced:
        return
    with _admin_lock:
        if _admin_synced:
            return
        row = conn.execute("SELECT password_hash FROM users WHERE username = %s", (ADMIN_USERNAME,)).fetchone()
        if row is None or not tokens.verify_password(ADMIN_PASSWORD, row[0]):
            conn.execute(
                "INSERT INTO users (username, password_hash) VALUES (%s, %s) "
                "ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash",
                (ADMIN_USERNAME, tokens.hash_password(ADMIN_PASSWORD)),
            )
        conn.commit()
        _admin_synced = True


def authenticated(handler: Handler) -> Handler:
    """Reject the request with 401 unless it carries a valid bearer token."""

    @functools.wraps(handler)
    def wrapper(request: Request) -> Response:
        secret = _secret_key()
        scheme, _, token = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        user = tokens.verify_token(token.strip(), secret) if scheme.lower() == "bearer" else None
        if user is None:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "missing or invalid token", [("WWW-Authenticate", "Bearer")])
        request.environ["demo.user"] = user
        return handler(request)

    return wrapper


def health(request: Request) -> Response:
    try:
        with connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = settings.describe_error(error, DATABASE_URL)
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "error", "error": reason})
    return json_response(HTTPStatus.OK, {"status": "ok"})


def _schema_version(conn: psycopg.Connection) -> str | None:
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version FROM schema_migrations ORDER BY version::numeric DESC LIMIT 1").fetchone()
    return row[0] if row else None


def status(request: Request) -> Response:
    with connect() as conn:
        schema_version = _schema_version(conn)
    answer = {"app": "demo", "version": VERSION, "schema_version": schema_version}
    return json_response(HTTPStatus.OK, answer | ({"banner": BANNER} if BANNER else {}))


def metrics(request: Request) -> Response:
    """Prometheus text exposition of the requests answered (itself not counted) and their durations."""
    registry = REGISTRY
    if settings.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(processes.ServiceProcesses())
    return Response(HTTPStatus.OK, generate_latest(registry), CONTENT_TYPE_LATEST)


def _credentials_valid(username: str, password: str) -> bool:
    """Checked by the authentication service when APP_AUTH_URL is set (503 when it cannot say), else
    against the users table."""
    if auth_client.configured():
        try:
            return auth_client.verify(username, password)
        except upstream.Unavailable as error:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, f"authentication service unavailable: {error}") from None
    with connect() as conn:
        _sync_admin(conn)
        row = conn.execute("SELECT password_hash FROM users WHERE username = %s", (username,)).fetchone()
    return row is not None and tokens.verify_password(password, row[0])


def login(request: Request) -> Response:
    secret = _secret_key()
    payload = request.json()
    username = _text_field(payload, "username")
    password = _text_field(payload, "password")
    if not _credentials_valid(username, password):
        audit(request, username, "login.refused", f"user {username}")
        raise HttpError(HTTPStatus.UNAUTHORIZED, "invalid username or password")
    audit(request, username, "login", f"user {username}")
    return json_response(HTTPStatus.OK, {"token": tokens.issue_token(username, secret)})


@authenticated
def create_item(request: Request) -> Response:
    name = _text_field(request.json(), "name")
    with connect() as conn:
        (item_id,) = conn.execute("INSERT INTO items (name) VALUES (%s) RETURNING id", (name,)).fetchone()
        audit(request, request.environ["demo.user"], "item.create", f"item {item_id}")
    return json_response(HTTPStatus.CREATED, {"id": item_id, "name": name})


@authenticated
def get_item(request: Request) -> Response:
    with connect() as conn:
        row = conn.execute("SELECT id, name FROM items WHERE id = %s", (int(request.args[0]),)).fetchone()
    if row is None:
        raise HttpError(HTTPStatus.NOT_FOUND, "item not found")
    return json_response(HTTPStatus.OK, {"id": row[0], "name": row[1]})


def _stored_path(file_id: int) -> Path:
    return UPLOAD_DIR / str(file_id)


@authenticated
def upload_file(request: Request) -> Response:
    name = request.query("name")
    if not name:
        raise HttpError(HTTPStatus.BAD_REQUEST, "query parameter 'name' is required")
    data = request.body(MAX_UPLOAD_BYTES)
    sha256 = hashlib.sha256(data).hexdigest()
    with connect() as conn:
        (file_id,) = conn.execute(
            "INSERT INTO files (name, size, sha256) VALUES (%s, %s, %s) RETURNING id", (name, len(data), sha256)
        ).fetchone()
        partial = UPLOAD_DIR / f".{file_id}.partial"
        partial.write_bytes(data)
        os.replace(partial, _stored_path(file_id))
        audit(request, request.environ["demo.user"], "file.upload", f"file {file_id}")
    return json_response(HTTPStatus.CREATED, {"id": file_id, "name": name, "size": len(data), "sha256": sha256})


@authenticated
def download_file(request: Request) -> Response:
    file_id = int(request.args[0])
    with connect() as conn:
        row = conn.execute("SELECT name FROM files WHERE id = %s", (file_id,)).fetchone()
    if row is None:
        raise HttpError(HTTPStatus.NOT_FOUND, "file not found")
    try:
        data = _stored_path(file_id).read_bytes()
    except FileNotFoundError:
        raise HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, f"stored content of file {file_id} is missing") from None
    disposition = f"attachment; filename*=UTF-8''{quote(row[0], safe='')}"
    return Response(HTTPStatus.OK, data, "application/octet-stream", [("Content-Disposition", disposition)])


def _answer(handle: Callable[[Request], tuple[HTTPStatus, dict[str, Any]]]) -> Handler:
    """A handler of a dependency module (rates, jobs, cache) as a JSON handler; its Refusal an HttpError."""

    @functools.wraps(handle)
    def handler(request: Request) -> Response:
        try:
            status, payload = handle(request)
        except upstream.Refusal as refusal:
            raise HttpError(refusal.status, refusal.message) from None
        return json_response(status, payload)

    return handler


ID = r"(\d{1,18})"
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"/health"), {"GET": health}),
    (re.compile(r"/api/status"), {"GET": status}),
    (re.compile(r"/metrics"), {"GET": metrics}),
    (re.compile(r"/api/login"), {"POST": login}),
    (re.compile(r"/api/items"), {"POST": create_item}),
    (re.compile(rf"/api/items/{ID}"), {"GET": get_item}),
    (re.compile(r"/api/files"), {"POST": upload_file}),
    (re.compile(rf"/api/files/{ID}"), {"GET": download_file}),
    (re.compile(r"/"), {"GET": pages.home}),
    (re.compile(r"/login"), {"GET": pages.login_form, "POST": pages.log_in}),
    (re.compile(r"/logout"), {"GET": pages.log_out}),
    (re.compile(r"/items"), {"GET": pages.items, "POST": pages.create_item}),
    (re.compile(r"/files"), {"GET": pages.files, "POST": pages.upload_file}),
    (re.compile(rf"/files/{ID}"), {"GET": pages.download_file}),
    (re.compile(r"/static/([a-z0-9_-]+\.(?:css|svg))"), {"GET": pages.static}),
    (re.compile(r"/api/rates"), {"GET": _answer(rates.get_rates)}),
    (re.compile(r"/api/jobs"), {"POST": authenticated(_answer(jobs.submit))}),
    (re.compile(rf"/api/jobs/{ID}"), {"GET": authenticated(_answer(jobs.status))}),
    (re.compile(rf"/api/cache/{cache.KEY}"), {"PUT": authenticated(_answer(cache.put)),
                                              "GET": authenticated(_answer(cache.get))}),
]


def _route(environ: dict[str, Any]) -> Response:
    path = environ.get("PATH_INFO", "")
    for pattern, handlers in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        handler = handlers.get(environ["REQUEST_METHOD"])
        if handler is None:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", [("Allow", ", ".join(handlers))])
        environ["demo.handler"] = handler.__name__
        return handler(Request(environ, match.groups()))
    raise HttpError(HTTPStatus.NOT_FOUND, "not found")


def _dispatch(environ: dict[str, Any]) -> Response:
    try:
        return _route(environ)
    except HttpError as error:
        return json_response(error.status, {"error": error.message}, error.headers)
    except psycopg.errors.UndefinedTable:
        logger.exception("database schema is not migrated")
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "database schema is not migrated"})
    except psycopg.OperationalError as error:
        reason = settings.describe_error(error, DATABASE_URL)
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"database unavailable: {reason}"})
    except Exception:
        logger.exception("unhandled error in %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
        return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal server error"})


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The WSGI entry point."""
    started = time.perf_counter()
    response = _dispatch(environ)
    if environ.get("PATH_INFO") != "/metrics":
        DURATION.labels(handler=environ.get("demo.handler", "none")).observe(time.perf_counter() - started)
        REQUESTS.labels(status=str(response.status.value)).inc()
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
    start_response(f"{response.status.value} {response.status.phrase}", headers)
    return [response.body]

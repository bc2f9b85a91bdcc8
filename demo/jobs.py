"""Jobs: submitted through the app, queued on RabbitMQ (APP_AMQP_URL), done by the worker (worker.py).

`POST /api/jobs` `{"text"}` stores the job in the `jobs` table as `queued`, then publishes its id to
the durable queue APP_AMQP_QUEUE (default `demo.jobs`, with publisher confirms); the worker computes
the result and marks the job `done`. `GET /api/jobs/<id>` answers its status and, once done, its result.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timezone
from http import HTTPStatus
from typing import Any

import pika
import pika.exceptions
import psycopg

import settings
import upstream

DEFAULT_QUEUE = "demo.jobs"
TIMEOUT_SECONDS = 3
MAX_TEXT = 10_000


def parameters() -> pika.URLParameters:
    """The broker's connection parameters, every wait bounded by TIMEOUT_SECONDS."""
    url = settings.get("APP_AMQP_URL")
    if url is None:
        raise upstream.Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "APP_AMQP_URL is not configured")
    params = pika.URLParameters(url)
    params.socket_timeout = params.blocked_connection_timeout = params.stack_timeout = TIMEOUT_SECONDS
    params.connection_attempts = 1
    return params


def queue() -> str:
    return settings.get("APP_AMQP_QUEUE") or DEFAULT_QUEUE


def declare(channel: Any) -> str:
    """Declare the durable queue (publisher and worker alike, whichever comes first); its name."""
    name = queue()
    channel.queue_declare(name, durable=True)
    return name


def publish(job_id: int, params: pika.URLParameters) -> None:
    """Put the job's id on the queue, confirmed by the broker; `upstream.Unavailable` when it is not."""
    try:
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            name = declare(channel)
            channel.confirm_delivery()
            channel.basic_publish("", name, json.dumps({"id": job_id}).encode(),
                                  pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                                  mandatory=True)
        finally:
            connection.close()
    except (pika.exceptions.AMQPError, OSError) as error:
        reason = str(error) or type(error).__name__
        raise upstream.Unavailable(f"amqp://{params.host}:{params.port} did not take the job: {reason}") from None


def submit(request: Any) -> tuple[HTTPStatus, dict[str, Any]]:
    """`POST /api/jobs`: 202 with the queued job's id; 503 (and no job kept) when the queue refuses it."""
    params = parameters()
    text = request.json().get("text")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise upstream.Refusal(HTTPStatus.BAD_REQUEST, f"'text' must be a string of 1 to {MAX_TEXT} characters")
    url = settings.database_url()
    with settings.connect(url) as conn:
        (job_id,) = conn.execute("INSERT INTO jobs (submitted_by, input) VALUES (%s, %s) RETURNING id",
                                 (request.environ["demo.user"], text)).fetchone()
    try:
        publish(job_id, params)
    except upstream.Unavailable as error:
        with settings.connect(url) as conn:
            conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
        raise upstream.Refusal(HTTPStatus.SERVICE_UNAVAILABLE, f"message queue unavailable: {error}") from None
    return HTTPStatus.ACCEPTED, {"id": job_id, "status": "queued"}


def status(request: Any) -> tuple[HTTPStatus, dict[str, Any]]:
    """`GET /api/jobs/<id>`: `{"id", "status", "result", "submitted_at", "done_at"}`, or 404."""
    with settings.connect(settings.database_url()) as conn:
        row = conn.execute("SELECT id, status, result, submitted_at, done_at FROM jobs WHERE id = %s",
                           (int(request.args[0]),)).fetchone()
    if row is None:
        raise upstream.Refusal(HTTPStatus.NOT_FOUND, "job not found")
    job_id, state, result, submitted, done = row
    return HTTPStatus.OK, {"id": job_id, "status": state, "result": result, "submitted_at": _utc(submitted),
                           "done_at": _utc(done)}


def result_of(text: str) -> dict[str, Any]:
    """What the worker computes for a job's text."""
    return {"words": len(text.split()), "characters": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def complete(conn: psycopg.Connection, job_id: int) -> bool:
    """Do the queued job `job_id` and store its result; False when there is no such queued job."""
    row = conn.execute("SELECT input FROM jobs WHERE id = %s AND status = 'queued' FOR UPDATE", (job_id,)).fetchone()
    if row is None:
        return False
    conn.execute("UPDATE jobs SET status = 'done', result = %s, done_at = now() WHERE id = %s",
                 (json.dumps(result_of(row[0])), job_id))
    return True


def _utc(moment: Any) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None

#!/usr/bin/env python3
"""The demo's worker: takes job ids from RabbitMQ's queue APP_AMQP_QUEUE (default `demo.jobs`) and
does each job (jobs.py).

    python worker.py

Run by supervisord from the live release, configured like the app (APP_AMQP_URL and DATABASE_URL,
from the environment or `.env`). A job is acknowledged only once its result is committed, so a job
whose worker dies is delivered again. When the broker or the database is away it retries every
RETRY_SECONDS. SIGTERM or SIGINT: it finishes the job at hand and exits. SIGHUP (a graceful
reload): it finishes the job at hand and executes itself again from the path it was started by
(`current/worker.py`), so the same process runs the release live then.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pika  # noqa: E402
import pika.exceptions  # noqa: E402
import psycopg  # noqa: E402

import jobs  # noqa: E402
import settings  # noqa: E402
import upstream  # noqa: E402

logger = logging.getLogger("demo.worker")
RETRY_SECONDS = 2
POLL_SECONDS = 1
stopping = threading.Event()
reloading = threading.Event()


def handle(channel, method, body: bytes) -> None:
    """Do one delivered job and acknowledge it; an unreadable message is dropped, saying so."""
    try:
        job_id = int(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        logger.error("dropped a message that names no job: %r", body[:100])
        channel.basic_ack(method.delivery_tag)
        return
    with settings.connect(settings.database_url()) as conn:
        done = jobs.complete(conn, job_id)
    channel.basic_ack(method.delivery_tag)
    logger.info("job %d %s", job_id, "done" if done else "was not queued: nothing to do")


def consume() -> None:
    """Take jobs until asked to stop; a lost broker or database ends it with the error."""
    connection = pika.BlockingConnection(jobs.parameters())
    try:
        channel = connection.channel()
        name = jobs.declare(channel)
        channel.basic_qos(prefetch_count=1)
        logger.info("waiting for jobs on %s", name)
        for method, _, body in channel.consume(name, inactivity_timeout=POLL_SECONDS):
            if stopping.is_set():
                break
            if method is not None:
                handle(channel, method, body)
        channel.cancel()
    finally:
        if connection.is_open:
            connection.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: (reloading.set(), stopping.set()))
    try:
        settings.load_env_file()
        settings.database_url()
        jobs.parameters()
    except (settings.ConfigError, upstream.Refusal) as error:
        print(f"worker: error: {error}", file=sys.stderr)
        return 2
    while not stopping.is_set():
        try:
            consume()
        except (pika.exceptions.AMQPError, psycopg.Error, OSError) as error:
            logger.warning("%s; retrying in %d s", str(error) or type(error).__name__, RETRY_SECONDS)
            stopping.wait(RETRY_SECONDS)
    if reloading.is_set():
        script = os.path.abspath(sys.argv[0])
        logger.info("reloading from %s", script)
        os.chdir(os.path.dirname(script))  # resolves `current` as it points now
        os.execv(sys.executable, [sys.executable, script])
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

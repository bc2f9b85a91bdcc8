"""Notifications of a run (Steps 6, 16 and 17) delivered to real HTTP servers on 127.0.0.1: what each
kind receives, and how endpoints that are down, slow, failing or wrong end up in the `Delivery`.
"""

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runbook.governance import notify
from runbook.config import load_environment


@dataclass
class Request:
    method: str
    path: str
    body: dict


@dataclass
class Endpoint:
    """A local HTTP server answering `status` after `delay` seconds; it records every request."""

    url: str
    status: int = 200
    delay: float = 0
    received: list[Request] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    endpoint: Endpoint

    def handle_error(self, request, client_address) -> None:
        """A client that gave up on a slow answer closes its end: not a test failure."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        endpoint.received.append(Request(self.command, self.path, json.loads(body or b"{}")))
        time.sleep(endpoint.delay)
        self.send_response(endpoint.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PATCH = _answer

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def serve():
    """Start local endpoints (`serve(status=..., delay=...)`); all are shut down when the test ends."""
    servers = []

    def start(status: int = 200, delay: float = 0) -> Endpoint:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.endpoint = Endpoint(f"http://127.0.0.1:{server.server_address[1]}/hook", status, delay)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server.endpoint

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def test_secret(monkeypatch, secret):
    monkeypatch.setenv("RUNBOOK_TEST_SECRET", secret)


@pytest.fixture
def environment(make_env):
    """An environment with these notifications (name, kind and url given, other settings as passed)."""

    def build(*notifications: dict):
        return load_environment(str(make_env({"notifications": list(notifications)})))

    return build


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(event: str = "rolled_back") -> notify.Message:
    return notify.compose(
        event, "test", "1.2.0", "20260101T000000Z-1.2.0", "dana", reason="Health checks failed: /health answered 503",
        link="https://runbook.example.com/reports/20260101T000000Z-1.2.0/index.html",
    )


def test_slack_receives_the_sentence_as_text(serve, environment):
    slack = serve()
    env = environment({"name": "chat", "kind": "slack", "url": slack.url})

    [delivery] = notify.send(env, message())

    assert (delivery.ok, delivery.status, delivery.attempts, delivery.error) == (True, 200, 1, "")
    [request] = slack.received
    assert request.method == "POST"
    assert list(request.body) == ["text"]
    assert request.body["text"].startswith("Deploy of 1.2.0 to test rolled back: Health checks failed:")
    assert message().link in request.body["text"]


def test_webhook_receives_every_field_of_the_message(serve, environment):
    hook = serve()
    env = environment({"name": "audit", "kind": "webhook", "url": hook.url})
    sent = message("failed")

    notify.send(env, sent)

    [request] = hook.received
    assert request.method == "POST"
    assert request.body == {
        "event": "failed", "environment": "test", "version": "1.2.0", "run_id": sent.run_id,
        "operator": "dana", "text": sent.text, "link": sent.link,
    }


@pytest.mark.parametrize("event, status", [
    ("started", "under_maintenance"),
    ("succeeded", "operational"),
    ("rolled_back", "operational"),
    ("failed", "major_outage"),
])
def test_status_page_component_is_patched_per_event(serve, environment, event, status):
    page = serve()
    env = environment({"name": "status", "kind": "statuspage", "url": page.url})

    [delivery] = notify.send(env, message(event))

    assert delivery.ok and delivery.event == event
    assert [(r.method, r.body) for r in page.received] == [("PATCH", {"component": {"status": status}})]


def test_every_notification_receives_the_message_in_order(serve, environment):
    chat, page = serve(), serve()
    env = environment(
        {"name": "chat", "kind": "slack", "url": chat.url},
        {"name": "status", "kind": "statuspage", "url": page.url},
    )

    deliveries = notify.send(env, message("started"))

    assert [(d.name, d.kind, d.ok) for d in deliveries] == [("chat", "slack", True), ("status", "statuspage", True)]
    assert len(chat.received) == len(page.received) == 1
    assert deliveries[0].as_record()["name"] == "chat"


def test_an_endpoint_that_is_down_is_tried_every_attempt(environment):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    env = environment({"name": "chat", "kind": "slack", "url": url, "attempts": 3, "timeout": 1})

    [delivery] = notify.send(env, message())

    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 3, None)
    assert "did not answer" in delivery.error and "refused" in delivery.error


def test_a_slow_endpoint_times_out_after_the_configured_attempts(serve, environment):
    slow = serve(delay=1.5)
    env = environment({"name": "chat", "kind": "slack", "url": slow.url, "attempts": 2, "timeout": 0.3})

    [delivery] = notify.send(env, message())

    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 2, None)
    assert delivery.error == "did not answer: no answer within 0.3 s"


def test_a_status_page_answering_500_is_retried_then_fails(serve, environment):
    page = serve(status=500)
    env = environment({"name": "status", "kind": "statuspage", "url": page.url, "attempts": 3})

    [delivery] = notify.send(env, message("started"))

    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 3, 500)
    assert len(page.received) == 3
    assert delivery.error.startswith("answered 500")


def test_a_404_is_not_retried(serve, environment):
    hook = serve(status=404)
    env = environment({"name": "audit", "kind": "webhook", "url": hook.url, "attempts": 3})

    [delivery] = notify.send(env, message())

    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 404)
    assert len(hook.received) == 1
    assert delivery.error == "answered 404 Not Found"


@pytest.mark.parametrize("up", [True, False], ids=["delivered", "down"])
def test_a_secret_in_the_url_never_appears_in_a_delivery(serve, environment, secret, up):
    base = serve().url if up else f"http://127.0.0.1:{closed_port()}/hook"
    env = environment({"name": "chat", "kind": "slack", "url": base + "?token=${RUNBOOK_TEST_SECRET}", "attempts": 1})

    [delivery] = notify.send(env, message())

    assert delivery.ok is up
    assert secret not in json.dumps(delivery.as_record()) and secret not in str(delivery)


def test_a_secret_in_an_error_is_masked(serve, environment, secret):
    hook = serve()
    env = environment({"name": "audit", "kind": "webhook", "url": hook.url + "?token=${RUNBOOK_TEST_SECRET}"})

    notify.send(env, notify.compose("failed", "test", "1.2.0", "run", "dana", reason=f"login with {secret} refused"))

    [request] = hook.received
    assert request.path == f"/hook?token={secret}"
    assert secret not in json.dumps(request.body) and "***" in request.body["text"]


def test_an_unset_secret_is_a_failed_delivery_not_an_exception(environment, monkeypatch):
    monkeypatch.delenv("RUNBOOK_NOTIFY_UNSET", raising=False)
    env = environment({"name": "chat", "kind": "slack", "url": "http://127.0.0.1:1/${RUNBOOK_NOTIFY_UNSET}"})

    [delivery] = notify.send(env, message())

    assert (delivery.ok, delivery.attempts) == (False, 0)
    assert "RUNBOOK_NOTIFY_UNSET" in delivery.error


def test_only_required_notifications_stop_the_deploy(serve, environment):
    ok, down = serve(), f"http://127.0.0.1:{closed_port()}/hook"
    env = environment(
        {"name": "chat", "kind": "slack", "url": down, "attempts": 1},
        {"name": "status", "kind": "statuspage", "url": down, "attempts": 1, "required": True},
        {"name": "audit", "kind": "webhook", "url": ok.url, "required": True},
    )

    deliveries = notify.send(env, message("started"))
    failures = notify.required_failures(deliveries, env)

    assert [d.ok for d in deliveries] == [False, False, True]
    assert len(failures) == 1
    assert failures[0].startswith("required statuspage notification status of started not delivered: did not answer")

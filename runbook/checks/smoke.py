"""The app's core journeys, walked as a user would after a release (runbook Steps 11 and 12).

Every journey runs against the app's base URL (taken from `endpoints.status`) with the account in
`endpoints.smoke`, and returns what it found as `Finding`s. A request that cannot go on (no answer,
an unexpected status) is a `CheckFailed` naming the request. No message ever holds the password or
the token: only the app's JSON `error` is quoted from an answer, and the token is redacted too.
"""

import hashlib
import os
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from secrets import token_hex
from urllib.parse import urlsplit

import requests

from runbook.config import Environment, Smoke
from runbook.errors import CheckFailed
from runbook.findings import Finding
from runbook.checks.probes import request_error, unexpected_status
from runbook.secrets import expand, redact
from runbook import http

UPLOAD_BYTES = 64 * 1024
PROTECTED = [
    ("POST", "/api/items"),
    ("GET", "/api/items/1"),
    ("POST", "/api/files?name=runbook-smoke.bin"),
    ("GET", "/api/files/1"),
]
"""Requests that need a login: each must be refused with 401 without one."""


@dataclass(frozen=True)
class Client:
    """Requests to the app, as `user` (with their token) or as nobody, over connections kept open between them
    (a new TLS connection for each took a third of a call's time) that carry no cookie from one to the next."""

    base: str
    timeout: float
    using: requests.Session = field(repr=False)
    """Made by `connections`: it trusts the environment's CA."""
    user: str | None = None
    token: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.user or 'no login'} at {self.base}"

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> requests.Response:
        """The app's answer, whatever its status; no answer at all is a `CheckFailed`."""
        headers = (headers or {}) | ({"Authorization": f"Bearer {self.token}"} if self.token else {})
        try:
            return http.request(method, self.base + path, headers=headers, timeout=self.timeout, using=self.using,
                                allow_redirects=False, **kwargs)
        except requests.RequestException as e:
            raise CheckFailed(f"{method} {self.base}{path} did not answer: {request_error(e, self.timeout)}") from None

    def expect(self, status: int, method: str, path: str, **kwargs) -> requests.Response:
        """The app's answer, which must have `status`; any other is a `CheckFailed`."""
        response = self.send(method, path, **kwargs)
        wrong = unexpected_status(response, status)
        if wrong:
            raise CheckFailed(f"{method} {self.base}{path} {wrong}")
        return response


def base_url(env: Environment) -> str:
    """`http://127.0.0.1:8710` for the status endpoint `http://127.0.0.1:8710/api/status`."""
    parts = urlsplit(env.endpoints.status)
    return f"{parts.scheme}://{parts.netloc}"


def account(env: Environment) -> Smoke:
    """The smoke test account; the journeys that need one fail without it."""
    if env.endpoints.smoke is None:
        raise CheckFailed(
            f"no smoke test account is configured: set endpoints.smoke (username and password) in {env.source}"
        )
    return env.endpoints.smoke


def connections(env: Environment) -> requests.Session:
    """A client's connections to the app: they trust `endpoints.ca_file`, and keep no cookie (a request sent
    without a login must not carry one an earlier answer set)."""
    made = http.session(env.endpoints.ca_file)
    made.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return made


def anonymous(env: Environment) -> Client:
    return Client(base_url(env), env.endpoints.timeout, connections(env))


def log_in(env: Environment, headers: dict[str, str] | None = None) -> Client:
    """Log in with the smoke test account (sending `headers` too); the client carries the token the app issued."""
    smoke = account(env)
    credentials = {"username": smoke.username, "password": expand(smoke.password)}
    nobody = anonymous(env)
    token = nobody.expect(200, "POST", "/api/login", json=credentials, headers=headers).json()["token"]
    redact.register(token)
    return Client(nobody.base, nobody.timeout, nobody.using, smoke.username, token)


def wrong_password_refused(env: Environment) -> Finding:
    username = account(env).username
    credentials = {"username": username, "password": f"wrong-{token_hex(8)}"}
    response = anonymous(env).send("POST", "/api/login", json=credentials)
    wrong = unexpected_status(response, 401)
    return Finding(f"login as {username} with a wrong password", not wrong, wrong or "refused with 401")


def item_round_trip(client: Client) -> Finding:
    """Create an item with a new name and read it back."""
    name = _new_name()
    created = client.expect(201, "POST", "/api/items", json={"name": name}).json()
    read = client.expect(200, "GET", f"/api/items/{created['id']}").json()
    same = read == {"id": created["id"], "name": name}
    detail = "read back equal" if same else f"read back as {read}"
    return Finding(f"item {name!r}", same, f"created as id {created['id']}, {detail}")


def file_round_trip(client: Client, size: int = UPLOAD_BYTES) -> Finding:
    """Upload `size` random bytes as a file and download them again."""
    name, data = f"{_new_name()}.bin", os.urandom(size)
    sent = hashlib.sha256(data).hexdigest()
    uploaded = client.expect(201, "POST", f"/api/files?name={name}", data=data).json()
    received = client.expect(200, "GET", f"/api/files/{uploaded['id']}").content
    got = hashlib.sha256(received).hexdigest()
    detail = (
        f"uploaded {size} bytes as id {uploaded['id']}, downloaded "
        + ("identical bytes" if got == sent else f"{len(received)} bytes that differ")
        + f" (SHA-256 sent {sent[:16]}..., received {got[:16]}...)"
    )
    return Finding(f"file {name!r}", got == sent, detail)


def unauthenticated_refused(env: Environment) -> list[Finding]:
    """Each API request that needs a login, sent without one, must be refused with 401; each page that needs
    one (`ui.pages`) must send the browser to the login page instead."""
    client = anonymous(env)
    found = []
    for method, path in PROTECTED:
        wrong = unexpected_status(client.send(method, path), 401)
        found.append(Finding(f"{method} {path} without a login", not wrong, wrong or "refused with 401"))
    for path in env.ui.protected if env.ui else []:
        found.append(_sent_to_login(client.send("GET", path), path, env.ui.login.page))
    return found


def _sent_to_login(response: requests.Response, path: str, login: str) -> Finding:
    location = urlsplit(response.headers.get("Location", ""))
    ok = response.status_code in (302, 303) and location.path == login
    detail = (f"sent to the login page ({response.status_code} to {login})" if ok else
              f"answered {response.status_code}" + (f" to {location.path}" if location.path else "")
              + f", expected a redirect to the login page {login}")
    return Finding(f"page GET {path} without a login", ok, detail)


def _new_name() -> str:
    return f"runbook-smoke-{token_hex(4)}"

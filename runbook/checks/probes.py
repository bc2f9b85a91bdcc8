"""HTTP checks of the app that settle after a service starts (runbook Step 10).

A just-started app may refuse connections, answer 503 or still be the old release for a moment, so
each check is tried up to `endpoints.attempts` times, `endpoints.interval` seconds apart, for at most
`endpoints.settle_seconds` in all, every request bounded by `endpoints.timeout`. The answer says how long it took to settle, e.g.
`http://127.0.0.1:8710/health answered 200 after 3 attempts (1.2 s)`; a check that never settles is
a `CheckFailed` naming the URL, the last status or connection error, and the number of attempts.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_fixed

from runbook.config import Environment
from runbook.errors import CheckFailed
from runbook import http

Judge = Callable[[requests.Response], str | None]
"""What is wrong with an answer (e.g. "answered 503 (expected 200)"), or None when it is the one expected."""


@dataclass(frozen=True)
class Answer:
    """The answer a check settled on, and how long it took to get it."""

    url: str
    status: int
    attempts: int
    elapsed: float
    body: Any = None
    """The answer's JSON, when it had some."""

    def __str__(self) -> str:
        return f"{self.url} answered {self.status} after {_attempts(self.attempts)} ({self.elapsed:.1f} s)"


class _NotYet(Exception):
    """An attempt that did not get the expected answer; the message says what came instead."""


def answers(env: Environment, url: str, status: int) -> Answer:
    """GET `url` until it answers `status`."""
    return _settle(env, url, lambda response: unexpected_status(response, status))


def reports_version(env: Environment, version: str, url: str | None = None) -> Answer:
    """GET the status endpoint (or `url`) until its JSON `version` is `version`; the answer's body holds
    the JSON (with `schema_version`)."""

    def judge(response: requests.Response) -> str | None:
        wrong = unexpected_status(response, 200)
        if wrong:
            return wrong
        reported = _json(response).get("version")
        return None if reported == version else f"reports version {reported!r} (expected {version!r})"

    return _settle(env, url or env.endpoints.status, judge)


def request_error(error: requests.RequestException, timeout: float) -> str:
    """A connection problem in a few words, e.g. "Connection refused" or "no answer within 5 s"."""
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    verify = re.search(r"certificate verify failed: ([^'\")(]+)", str(error))
    if isinstance(error, requests.exceptions.SSLError) and verify:
        return f"TLS certificate not trusted: {verify.group(1).strip()}"
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return match.group(1) if match else str(error)


def unexpected_status(response: requests.Response, status: int) -> str | None:
    """E.g. "answered 503 (expected 200): <the app's error>", or None when the status is `status`.
    Only the app's JSON `error` is quoted, never the rest of an answer (it may hold a token)."""
    if response.status_code == status:
        return None
    error = _json(response).get("error")
    return f"answered {response.status_code} (expected {status})" + (f": {error}" if error else "")


def _settle(env: Environment, url: str, judge: Judge) -> Answer:
    endpoints = env.endpoints
    retrying = Retrying(
        stop=stop_after_attempt(endpoints.attempts) | stop_after_delay(endpoints.settle_seconds),
        wait=wait_fixed(endpoints.interval),
        retry=retry_if_exception_type(_NotYet),
        reraise=True,
    )
    started = time.monotonic()
    try:
        response, reason = retrying(_attempt, url, endpoints.timeout, endpoints.ca_file, judge), ""
    except _NotYet as e:
        response, reason = None, str(e)
    attempts, elapsed = retrying.statistics["attempt_number"], time.monotonic() - started
    if response is None:
        raise CheckFailed(f"{url} {reason}; gave up after {_attempts(attempts)} ({elapsed:.1f} s)")
    return Answer(url, response.status_code, attempts, elapsed, _json(response) or None)


def _attempt(url: str, timeout: float, ca_file: Path | None, judge: Judge) -> requests.Response:
    try:
        response = http.request("GET", url, timeout=timeout, ca_file=ca_file, allow_redirects=False)
    except requests.RequestException as e:
        raise _NotYet(f"did not answer: {request_error(e, timeout)}") from None
    wrong = judge(response)
    if wrong:
        raise _NotYet(wrong)
    return response


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"

"""Step 11's journeys through the app's own dependencies, walked by the smoke test user: a job through
the message queue and the app's worker, a value through the cache, a call to the external API.

Each runs only where `endpoints.smoke.journeys` lists it (elsewhere its scenario is not applicable),
and every wait has a deadline from `endpoints.smoke`. The app's endpoints: `POST /api/jobs`,
`GET /api/jobs/<id>`, `PUT`/`GET /api/cache/<key>`, `GET /api/rates` (see demo/README.md).
"""

import hashlib
import time
from secrets import token_hex

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from runbook.checks import idle
from runbook.checks.probes import unexpected_status
from runbook.checks.smoke import Client
from runbook.config import Environment
from runbook.errors import CheckFailed
from runbook.findings import Finding

FIRST_POLL_SECONDS, POLL_SECONDS = 0.05, 0.25
"""A wait asks again after 0.05 s, then twice as long each time, at most every 0.25 s: a worker's job or a
value's expiry is most often a few milliseconds away, and a dead worker is not asked 20 times a second."""


def _until(seconds: float, attempt):
    """`attempt()` until it returns something other than None, for at most `seconds`, asking again after
    `FIRST_POLL_SECONDS`, then twice as long each time up to `POLL_SECONDS`; the last answer (None when it
    never came) and the time taken."""
    started = time.monotonic()
    retrying = Retrying(stop=stop_after_delay(seconds), wait=wait_exponential(FIRST_POLL_SECONDS, max=POLL_SECONDS),
                        retry=retry_if_result(lambda answer: answer is None), retry_error_callback=lambda _: None)
    return retrying(attempt), time.monotonic() - started


def job_processed(env: Environment, client: Client) -> Finding:
    """Submit a job and wait for the worker to have done it, with the result the worker should compute."""
    deadline = env.endpoints.smoke.job_seconds
    text = f"runbook smoke job {token_hex(4)}"
    job = client.expect(202, "POST", "/api/jobs", json={"text": text}).json()
    subject = f"job {job['id']} ({text!r})"

    def done() -> dict | None:
        answer = client.expect(200, "GET", f"/api/jobs/{job['id']}").json()
        return answer if answer["status"] == "done" else None

    answer, took = _until(deadline, done)
    if answer is None:
        return Finding(subject, False, f"still queued after {deadline:g} s: no worker took it from the queue")
    expected = {"words": len(text.split()), "characters": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    ok = answer["result"] == expected
    return Finding(subject, ok, f"done within {took:.1f} s (deadline {deadline:g} s), "
                                + ("with the expected result" if ok else f"with the result {answer['result']}, expected {expected}"))


WRITES = 3
"""How many values the cache check writes at most: a read-back answered only after the value's time to live
cannot tell a value that was kept from one that was not, so another value is written."""


def cache_written(env: Environment, client: Client) -> tuple[Finding, str, float]:
    """Write a new value with the configured time to live and read it back at once; the finding, the key,
    and when the app had answered the write (monotonic), after which the value may live no longer than
    its time to live.

    A read-back answered within the time to live (counted from before the write was sent) must find the
    value: a 404 then is a value lost. One answered later is no evidence either way, and the check writes
    a fresh value (at most `WRITES`), so that a short time to live never fails a cache that works."""
    ttl = env.endpoints.smoke.cache_ttl_seconds
    late = 0
    while True:
        key, value = f"runbook-smoke-{token_hex(4)}", token_hex(16)
        sent = time.monotonic()
        client.expect(200, "PUT", f"/api/cache/{key}", json={"value": value, "ttl_seconds": ttl})
        written = time.monotonic()
        read = client.send("GET", f"/api/cache/{key}")
        in_time = time.monotonic() < sent + ttl
        if read.status_code != 404 or in_time or late + 1 == WRITES:
            break
        late += 1
    retried = f" (after {late} read-back{'s' if late > 1 else ''} answered past it)" if late else ""
    if read.status_code == 404:
        detail = (f"every read-back of {WRITES} values answered after their time to live of {ttl} s: the app is too "
                  "slow to tell whether the cache keeps them (raise endpoints.smoke.cache_ttl_seconds)"
                  if not in_time else f"gone (404) within its time to live of {ttl} s")
        return Finding(f"cache key {key}", False, detail), key, written
    wrong = unexpected_status(read, 200)
    if wrong:
        raise CheckFailed(f"GET {client.base}/api/cache/{key} {wrong}")
    got = read.json().get("value")
    detail = f"written with a time to live of {ttl} s{retried}, " + ("read back equal" if got == value else f"read back as {got!r}")
    return Finding(f"cache key {key}", got == value, detail), key, written


def cache_expired(env: Environment, client: Client, key: str, written: float) -> Finding:
    """The value whose write the app had answered at `written` is gone once its time to live has passed
    (asked at that moment, then again more and more seldom for a second's grace). The wait is the
    phase's time for work asked for ahead (`idle`)."""
    ttl = env.endpoints.smoke.cache_ttl_seconds
    idle.until(written + ttl)

    def gone() -> bool | None:
        return True if client.send("GET", f"/api/cache/{key}").status_code == 404 else None

    expired, _ = _until(1, gone)
    detail = (f"gone (404) once its time to live of {ttl} s had passed" if expired
              else f"still readable more than a second after its time to live of {ttl} s")
    return Finding(f"cache key {key}", bool(expired), detail)


def external_api_answers(client: Client) -> Finding:
    """The app's `GET /api/rates`, which calls the external API, answers with rates."""
    answer = client.expect(200, "GET", "/api/rates").json()
    rates = answer.get("rates")
    ok = isinstance(rates, dict) and bool(rates)
    return Finding("GET /api/rates", ok, f"answered {len(rates) if ok else 'no'} rates from {answer.get('source')}")

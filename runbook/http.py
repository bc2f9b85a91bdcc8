"""HTTP calls with a total deadline: `requests` bounds each read by its `timeout`, so a server that answers
one byte a second holds a call forever; here the whole call (connect, headers, body) ends by `timeout`.

    >>> request("GET", "http://127.0.0.1:8710/health", timeout=3).status_code
    200

A watchdog shuts the call's socket at the deadline, whatever read it is in; the call then raises
`requests.Timeout`, which `runbook.checks.probes.request_error` words as "no answer within 3 s".

An https call trusts the CA file it is given (the environment's `endpoints.ca_file`, e.g. the local
CA) instead of the system's store: `session(ca_file)` and `request(..., ca_file=...)` are the one
place that turns it into requests' `verify`.
"""

import socket
import threading
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

_calls = threading.local()
"""The connections the current thread's call has taken, so that its watchdog can cut them."""


class _Watched(HTTPAdapter):
    """An adapter that tells the current call which connection it uses."""

    def get_connection_with_tls_context(self, *args, **kwargs):
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        if not getattr(pool, "runbook_watched", False):
            take = pool._get_conn

            def taken(timeout=None):
                conn = take(timeout)
                if getattr(_calls, "connections", None) is not None:
                    _calls.connections.append(conn)
                return conn

            pool._get_conn, pool.runbook_watched = taken, True
        return pool


def session(ca_file: Path | None = None) -> requests.Session:
    """A session whose calls `request` can cut at their deadline (keep-alive for a load of many calls);
    its https calls trust `ca_file` (None: the system's store)."""
    made = requests.Session()
    made.verify = str(ca_file) if ca_file is not None else True
    adapter = _Watched(max_retries=0)
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


class _Watchdog:
    """Cuts the call's connections once `seconds` have passed, unless the call finished first."""

    def __init__(self, seconds: float) -> None:
        self.connections: list = []
        self.cut, self.lock = False, threading.Lock()
        self.timer = threading.Timer(seconds, self._cut)
        self.timer.daemon = True

    def _cut(self) -> None:
        with self.lock:
            if self.cut is None:
                return
            self.cut = True
            for conn in self.connections:
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:  # already closed
                        pass

    def finish(self) -> bool:
        """Stop watching; whether the deadline had already cut the call."""
        self.timer.cancel()
        with self.lock:
            expired, self.cut = self.cut, None
        return bool(expired)


def request(method: str, url: str, *, timeout: float, using: requests.Session | None = None,
            ca_file: Path | None = None, **kwargs) -> requests.Response:
    """`requests.request` whose whole call, body included, ends within `timeout` seconds (then
    `requests.Timeout`); `using`: a session made by `session()` (which knows its CA), else one for this
    call only, trusting `ca_file`."""
    own = using is None
    client = session(ca_file) if own else using
    kwargs.setdefault("verify", client.verify)  # explicit: REQUESTS_CA_BUNDLE would override the session's
    watchdog, error = _Watchdog(timeout), None
    _calls.connections = watchdog.connections
    watchdog.timer.start()
    try:
        response = client.request(method, url, timeout=timeout, stream=True, **kwargs)
        response._content = b"".join(response.iter_content(65536))
    except requests.RequestException as e:
        error = e
    finally:
        expired = watchdog.finish()
        _calls.connections = None
        if own:
            client.close()
    if expired:  # whatever the cut socket made of the call (a body without a length ends early)
        raise requests.Timeout(f"no complete answer within {timeout:g} s") from None
    if error is not None:
        raise error
    return response

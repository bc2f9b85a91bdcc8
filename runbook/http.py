"""HTTP calls with a total deadline: `requests` bounds each read by its `timeout`, so a server that answers
one byte a second holds a call forever; here the whole call (connect, headers, body) ends by `timeout`.

    >>> request("GET", "http://127.0.0.1:8710/health", timeout=3).status_code
    200

A watchdog shuts the call's socket at the deadline, whatever read it is in; the call then raises
`requests.Timeout`, which `runbook.checks.probes.request_error` words as "no answer within 3 s".
"""

import socket
import threading

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


def session() -> requests.Session:
    """A session whose calls `request` can cut at their deadline (keep-alive for a load of many calls)."""
    made = requests.Session()
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
            **kwargs) -> requests.Response:
    """`requests.request` whose whole call, body included, ends within `timeout` seconds (then
    `requests.Timeout`); `using`: a session made by `session()`, else one for this call only."""
    own = using is None
    client = session() if own else using
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

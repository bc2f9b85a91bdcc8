"""A steady request load on the app, as its users would make during a deploy: what each request got, and
the longest time without a successful answer."""

import threading
import time
from pathlib import Path

import requests


class Load:
    """A steady request load: `threads` clients each asking `url` back to back (every request bounded by
    `timeout`) until stopped. Each answer is kept as (`time.time()` when sent, whether it was a 200,
    the `version` its JSON names, if any)."""

    def __init__(self, url: str, threads: int = 1, pause: float = 0.05, timeout: float = 5,
                 ca_file: Path | None = None) -> None:
        self.url, self.pause, self.timeout = url, pause, timeout
        self.verify = str(ca_file) if ca_file else True
        self.samples: list[tuple[float, bool, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.samples.sort()

    def _client(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                moment, ok, version = time.time(), False, None
                try:
                    answer = session.get(self.url, timeout=self.timeout, verify=self.verify)
                    ok = answer.status_code == 200
                    version = answer.json().get("version") if ok else None
                except (requests.RequestException, ValueError):
                    pass
                self.samples.append((moment, ok, version))
                self.stop.wait(self.pause)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.samples if not ok)

    def longest_gap(self) -> float:
        """The longest time between two successful answers (or from the first request to one)."""
        last_ok, gap = self.samples[0][0], 0.0
        for moment, ok, _ in self.samples:
            if ok:
                gap, last_ok = max(gap, moment - last_ok), moment
        return max(gap, self.samples[-1][0] - last_ok)

    def __str__(self) -> str:
        return (f"{self.failed} of {len(self.samples)} requests failed, longest time without a successful "
                f"answer {self.longest_gap():.2f} s")

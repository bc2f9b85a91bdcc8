"""The active prober, the watch's default source: `requests_per_sample` requests every interval, in
threads, each sent at a random moment of the interval (so a release failing on a period cannot hide
between ticks) and bounded by `watch.timeout`. A slow answer is a latency, no answer an error, a status
of 500 or more an error; the database is ok when the health endpoint answers 200. A tick never waits for
a request: each sample holds the requests that finished since the previous one.

    prober = Prober(env, rng=random.Random(7))
    prober.begin()       # the first interval's requests are on their way
    prober.sample()      # Sample.of(at, Tally(requests=10, errors=0, latencies=(...)), database_ok=True)
    prober.end()         # requests not yet sent are dropped
"""

import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from runbook.config import Environment, ProberSource
from runbook.watch.samples import SYSTEM, Clock, Sample, Source, Tally


@dataclass(frozen=True)
class Answer:
    """One request: its URL, the status (None: no answer within the timeout) and the seconds it took."""

    url: str
    status: int | None
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


def tally(answers: list[Answer]) -> Tally:
    """The requests counted together; a latency only for those answered."""
    latencies = tuple(a.seconds for a in answers if a.status is not None)
    return Tally(len(answers), sum(a.failed for a in answers), latencies)


class Prober(Source):
    """Requests sent by the runbook itself."""

    def __init__(self, env: Environment, clock: Clock = SYSTEM, rng: random.Random | None = None) -> None:
        super().__init__(env, clock)
        self.random = rng or random.Random()
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._pending: list[Future] = []

    @property
    def config(self) -> ProberSource:
        return self.env.watch.source

    def begin(self) -> None:
        self.end()
        interval = self.env.watch.interval_seconds
        in_flight = self.config.requests_per_sample * (2 + math.ceil(self.timeout / interval))
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="prober")
        self._stop = threading.Event()
        self._schedule()

    def sample(self) -> Sample:
        if self._pool is None:
            raise RuntimeError("the prober samples a series: begin() first")
        at = self.clock.now()
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if f not in done]
        self._schedule()
        answers = [answer for f in done if (answer := f.result()) is not None]
        health = [a.status == 200 for a in answers if a.url == self.env.endpoints.health and a.status is not None]
        missing = None if answers else "no request finished since the previous sample"
        return Sample.of(at, tally(answers), all(health) if health else None, missing)

    def end(self) -> None:
        if self._pool is not None:
            self._stop.set()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._pending = None, []

    def _schedule(self) -> None:
        """This interval's requests, each at its own random moment of it."""
        urls = self.config.urls or [self.env.endpoints.health, self.env.endpoints.status]
        interval = self.env.watch.interval_seconds
        for i in range(self.config.requests_per_sample):
            delay = self.random.uniform(0, interval)
            self._pending.append(self._pool.submit(self._probe, urls[i % len(urls)], delay, self._stop))

    def _probe(self, url: str, delay: float, stop: threading.Event) -> Answer | None:
        """The answer to one request after `delay` seconds; None when the series ended before it was sent."""
        if stop.wait(delay):
            return None
        started = time.perf_counter()
        response, _ = self.get(url)
        return Answer(url, response.status_code if response is not None else None, time.perf_counter() - started)

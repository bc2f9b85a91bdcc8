"""Work a phase's later checks will need, done while an earlier check of the same phase only waits: a check
that waits (`until`) first runs what was asked for `ahead`, then sleeps what is left of its wait. Starting
Chromium and logging the smoke test user in for Step 12 takes about 0.6 s, about what Step 11's cache check
waits for its value's time to live.

A job runs once, in the waiting check's thread (Playwright's objects belong to the thread that made them),
and what it raises is dropped: the check that needs the work does it itself and fails there with its own
error. A job may end after the wait's moment (it has deadlines of its own): the check then asks later than
it would have, never sooner. Each phase's session is a process of its own, so its jobs are its own.
"""

import contextlib
import time
from collections.abc import Callable

_pending: list[Callable[[], object]] = []


def ahead(job: Callable[[], object]) -> None:
    """Have `job` run in the first wait of a check of this session."""
    _pending.append(job)


def until(moment: float) -> None:
    """Wait until the monotonic `moment`, running the jobs asked for ahead meanwhile."""
    while _pending and time.monotonic() < moment:
        job = _pending.pop(0)
        with contextlib.suppress(Exception):
            job()
    time.sleep(max(0.0, moment - time.monotonic()))

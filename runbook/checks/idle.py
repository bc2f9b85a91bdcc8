"""Checks and work a phase's later steps will need, done before those steps ask, so that their time overlaps:

- `ahead`: work done while an earlier check of the same phase only waits. A check that waits (`until`) first
  runs what was asked for ahead, then sleeps what is left of its wait. Starting Chromium and logging the
  smoke test user in for Step 12 takes about 0.6 s, about what Step 11's cache check waits for its value's
  time to live; Step 12's page loads (0.5 s, reading only) then use the rest of it. A job runs once, in the
  waiting check's thread (Playwright's objects belong to the thread that made them); it may end after the
  wait's moment (it has deadlines of its own): the check then asks later than it would have, never sooner.
- `alongside`: a check that changes nothing another check reads, and mostly waits on other processes (a
  host's command, the database, the app), started in a thread as the phase's session begins, while the
  checks before its step run.

A check done either way (`ahead_check`, `alongside`) keeps what it found, and when, for the step that shows
it (`checked`), which says when it was checked. What a job or a check raises there is dropped: the step runs
the check itself and fails with its own error. Each phase's session is a process of its own, so its jobs
and threads are its own.
"""

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook.times import utc_now

THREADS = 4
"""How many checks run alongside at once."""

_pending: list[Callable[[], object]] = []


@dataclass(frozen=True)
class Kept:
    """What a check found, when it began, and whether that was before its step asked."""

    found: Any
    at: datetime
    ahead: bool


@dataclass(frozen=True)
class _Check:
    """A check asked for before its step: what it finds is kept for `checked`."""

    check: Callable[..., Any]
    args: tuple

    def same(self, check: Callable[..., Any], args: tuple) -> bool:
        """Whether it is `check` for these very objects (an equal environment is not the one the step has)."""
        return self.check is check and len(self.args) == len(args) and all(a is b for a, b in zip(self.args, args))

    def run(self) -> Kept:
        at = utc_now()
        return Kept(self.check(*self.args), at, True)

    def __call__(self) -> None:
        """Run in a wait (`ahead`)."""
        done: Future[Kept] = Future()
        done.set_result(self.run())
        _found.append((self, done))


_found: list[tuple[_Check, Future]] = []
"""Each check done or started before its step asked."""
_threads: ThreadPoolExecutor | None = None


def ahead(job: Callable[[], object]) -> None:
    """Have `job` run in the first wait of a check of this session."""
    _pending.append(job)


def ahead_check(check: Callable[..., Any], *args: Any) -> None:
    """Have `check(*args)` run in the first wait of a check of this session, what it finds kept for `checked`."""
    ahead(_Check(check, args))


def alongside(check: Callable[..., Any], *args: Any) -> None:
    """Start `check(*args)` now, in a thread, what it finds kept for `checked`: only for a check that changes
    nothing another check reads and whose calls have deadlines of their own (its step waits for it as it
    would for the check)."""
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="alongside")
    job = _Check(check, args)
    _found.append((job, _threads.submit(job.run)))


def checked(check: Callable[..., Any], *args: Any) -> Kept:
    """What `check(*args)` found before its step asked (waiting for it when it still runs alongside), once;
    else (it was not asked for, or raised) what it finds now, and it is no longer asked for ahead."""
    for i, (job, done) in enumerate(_found):
        if job.same(check, args):
            del _found[i]
            with contextlib.suppress(Exception):
                return done.result()
            break
    _pending[:] = [job for job in _pending if not (isinstance(job, _Check) and job.same(check, args))]
    at = utc_now()
    return Kept(check(*args), at, False)


def until(moment: float) -> None:
    """Wait until the monotonic `moment`, running the jobs asked for ahead meanwhile."""
    while _pending and time.monotonic() < moment:
        job = _pending.pop(0)
        with contextlib.suppress(Exception):
            job()
    time.sleep(max(0.0, moment - time.monotonic()))

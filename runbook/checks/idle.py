"""Work a phase's later checks will need, done while an earlier check of the same phase only waits: a check
that waits (`until`) first runs what was asked for `ahead`, then sleeps what is left of its wait. Starting
Chromium and logging the smoke test user in for Step 12 takes about 0.6 s, about what Step 11's cache check
waits for its value's time to live; Step 12's page loads (0.5 s, reading only) then use the rest of it.

A job runs once, in the waiting check's thread (Playwright's objects belong to the thread that made them),
and what it raises is dropped: the check that needs the work does it itself and fails there with its own
error. A job may end after the wait's moment (it has deadlines of its own): the check then asks later than
it would have, never sooner. Each phase's session is a process of its own, so its jobs are its own.

A check run ahead (`ahead_check`) keeps what it found, and when, for the step that shows it (`checked`); that
step says when it was checked.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook.times import utc_now

_pending: list[Callable[[], object]] = []


@dataclass(frozen=True)
class Kept:
    """What a check found, when it began, and whether that was ahead, in an earlier check's wait."""

    found: Any
    at: datetime
    ahead: bool


def ahead(job: Callable[[], object]) -> None:
    """Have `job` run in the first wait of a check of this session."""
    _pending.append(job)


@dataclass(frozen=True)
class _Check:
    """A check asked for ahead: run, it keeps what it found for `checked`."""

    check: Callable[..., Any]
    args: tuple

    def same(self, check: Callable[..., Any], args: tuple) -> bool:
        """Whether it is `check` for these very objects (an equal environment is not the one the step has)."""
        return self.check is check and len(self.args) == len(args) and all(a is b for a, b in zip(self.args, args))

    def __call__(self) -> None:
        at = utc_now()
        _kept.append((self, Kept(self.check(*self.args), at, True)))


_kept: list[tuple[_Check, Kept]] = []


def ahead_check(check: Callable[..., Any], *args: Any) -> None:
    """Have `check(*args)` run in the first wait of a check of this session, what it finds kept for `checked`."""
    ahead(_Check(check, args))


def checked(check: Callable[..., Any], *args: Any) -> Kept:
    """What `check(*args)` found ahead, once; else (it was not run ahead, or raised there) what it finds now,
    and it is no longer asked for ahead."""
    for i, (done, kept) in enumerate(_kept):
        if done.same(check, args):
            del _kept[i]
            return kept
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

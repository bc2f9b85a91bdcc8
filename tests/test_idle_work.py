"""Work asked for ahead runs in the first wait of a check (`runbook.checks.idle`): once, in the waiting
thread, its failure dropped, and the wait still lasts until its moment."""

import threading
import time

import pytest

from runbook.checks import idle


@pytest.fixture(autouse=True)
def nothing_pending():
    yield
    idle._pending.clear()


def test_a_wait_runs_the_work_asked_ahead_once_in_its_own_thread_and_ends_no_sooner_than_its_moment():
    ran = []
    idle.ahead(lambda: ran.append(threading.current_thread()))
    moment = time.monotonic() + 0.3
    idle.until(moment)
    assert time.monotonic() >= moment and ran == [threading.current_thread()]
    idle.until(time.monotonic() + 0.05)
    assert len(ran) == 1


def test_work_that_fails_ahead_is_dropped_and_the_work_after_it_still_runs():
    ran = []

    def broken():
        raise RuntimeError("Chromium did not start")

    idle.ahead(broken)
    idle.ahead(lambda: ran.append("second"))
    idle.until(time.monotonic() + 0.2)
    assert ran == ["second"] and idle._pending == []


def test_a_wait_whose_moment_has_passed_leaves_the_work_for_a_later_wait():
    ran = []
    idle.ahead(lambda: ran.append("job"))
    idle.until(time.monotonic() - 1)
    assert ran == []
    idle.until(time.monotonic() + 0.1)
    assert ran == ["job"]

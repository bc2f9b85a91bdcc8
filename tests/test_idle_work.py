"""Work asked for ahead runs in the first wait of a check (`runbook.checks.idle`): once, in the waiting
thread, its failure dropped, and the wait still lasts until its moment; a check run so, or started alongside
in a thread, gives its step what it found, once, and one that raised or never ran is run when its step asks."""

import threading
import time

import pytest

from runbook.checks import idle


@pytest.fixture(autouse=True)
def nothing_pending():
    yield
    idle._pending.clear()
    idle._found.clear()


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


class Counted:
    """A check that counts its runs and finds which run it was."""

    def __init__(self, fails_first: bool = False) -> None:
        self.runs, self.fails_first = 0, fails_first

    def __call__(self, subject: object) -> int:
        self.runs += 1
        if self.fails_first and self.runs == 1:
            raise RuntimeError("the page did not load")
        return self.runs


def test_a_check_run_ahead_gives_its_step_what_it_found_once_and_says_it_ran_ahead():
    check, env = Counted(), object()
    idle.ahead_check(check, env)
    before = idle.utc_now()
    idle.until(time.monotonic() + 0.1)
    kept = idle.checked(check, env)
    assert (kept.found, kept.ahead, check.runs) == (1, True, 1) and kept.at >= before
    again = idle.checked(check, env)
    assert (again.found, again.ahead, check.runs) == (2, False, 2)


def test_a_check_that_raised_ahead_is_run_again_when_its_step_asks():
    check, env = Counted(fails_first=True), object()
    idle.ahead_check(check, env)
    idle.until(time.monotonic() + 0.1)
    kept = idle.checked(check, env)
    assert (kept.found, kept.ahead, check.runs) == (2, False, 2)


def test_a_check_run_ahead_for_other_arguments_is_not_what_a_step_gets():
    check = Counted()
    idle.ahead_check(check, {"env": "local"})
    idle.until(time.monotonic() + 0.1)
    kept = idle.checked(check, {"env": "local"})  # equal, but not the object it was run ahead for
    assert (kept.found, kept.ahead) == (2, False)


def test_a_check_never_waited_for_runs_when_its_step_asks_and_not_again_in_a_later_wait():
    check, env = Counted(), object()
    idle.ahead_check(check, env)
    kept = idle.checked(check, env)
    assert (kept.found, kept.ahead, check.runs) == (1, False, 1)
    idle.until(time.monotonic() + 0.1)
    assert check.runs == 1


def test_a_check_started_alongside_runs_in_another_thread_and_its_step_waits_for_what_it_found():
    started, release, threads = threading.Event(), threading.Event(), []
    env = object()

    def slow(subject: object) -> str:
        threads.append(threading.current_thread())
        started.set()
        release.wait(5)
        return "found"

    idle.alongside(slow, env)
    assert started.wait(5)
    threading.Timer(0.1, release.set).start()
    kept = idle.checked(slow, env)
    assert (kept.found, kept.ahead) == ("found", True)
    assert threads and threads[0] is not threading.current_thread()
    assert len(threads) == 1


def test_a_check_that_raised_alongside_is_run_again_when_its_step_asks():
    check, env = Counted(fails_first=True), object()
    idle.alongside(check, env)
    kept = idle.checked(check, env)
    assert (kept.found, kept.ahead, check.runs) == (2, False, 2)

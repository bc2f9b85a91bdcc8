"""The run's checking process: one server per run imports pytest and the steps once and forks a fresh
session for each verifying phase, so phases share the imports but never each other's memory; a session
past its deadline is killed with what it started, and a server that dies is replaced for the next phase."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from runbook.engine.checker import Checker, CheckerFailed

LEAKS = """
import runbook

def test_leaves_something_in_memory():
    runbook.left_by_an_earlier_phase = True
"""

SEES = """
import runbook

def test_sees_nothing_an_earlier_phase_left():
    assert not hasattr(runbook, "left_by_an_earlier_phase")
"""

HANGS = """
import subprocess, time
from pathlib import Path

def test_hangs_with_a_child():
    child = subprocess.Popen(["sleep", "300"])
    Path({pid_file!r}).write_text(str(child.pid))
    print("child started", flush=True)
    time.sleep(300)
"""


@pytest.fixture
def checker():
    made = Checker()
    yield made
    made.stop()


def session(checker: Checker, folder: Path, name: str, text: str, seconds: float = 120, shown=None) -> int | None:
    test = folder / f"test_{name}.py"
    test.write_text(text)
    argv = [str(test), "--rootdir", str(folder), "-q", "-s", "-p", "no:cacheprovider"]
    return checker.run(argv, folder / f"{name}.out", seconds, shown or (lambda text: None))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_every_session_is_forked_by_the_same_server_and_sees_nothing_an_earlier_one_left(checker, tmp_path):
    assert session(checker, tmp_path, "leaks", LEAKS) == 0
    server = checker.server.pid
    assert session(checker, tmp_path, "sees", SEES) == 0
    assert checker.server.pid == server


def test_a_failing_session_says_pytests_exit_code_and_its_output_is_shown(checker, tmp_path):
    shown = []
    assert session(checker, tmp_path, "fails", "def test_fails():\n    assert 1 == 2\n", shown=shown.append) == 1
    assert "1 failed" in "".join(shown)


def test_a_session_past_its_deadline_is_killed_with_what_it_started_and_the_server_serves_on(checker, tmp_path):
    pid_file = tmp_path / "child.pid"
    assert session(checker, tmp_path, "hangs", HANGS.format(pid_file=str(pid_file)), seconds=3) is None
    child = int(pid_file.read_text())
    until = time.monotonic() + 10
    while _alive(child) and time.monotonic() < until:
        time.sleep(0.1)
    assert not _alive(child), "the session's own child outlived its deadline"
    server = checker.server.pid
    assert session(checker, tmp_path, "after", "def test_ok():\n    pass\n") == 0
    assert checker.server.pid == server


def test_a_server_killed_mid_session_fails_that_phase_and_the_next_gets_a_new_one(checker, tmp_path):
    pid_file = tmp_path / "child.pid"

    def kill_server_once_the_session_runs():
        until = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < until:
            time.sleep(0.05)
        os.kill(checker.server.pid, signal.SIGKILL)

    threading.Thread(target=kill_server_once_the_session_runs, daemon=True).start()
    with pytest.raises(CheckerFailed, match="the checking process ended"):
        session(checker, tmp_path, "orphaned", HANGS.format(pid_file=str(pid_file)))
    child = int(pid_file.read_text())
    until = time.monotonic() + 10
    while _alive(child) and time.monotonic() < until:
        time.sleep(0.1)
    assert not _alive(child), "the session of a dead server went on running"
    assert session(checker, tmp_path, "next", "def test_ok():\n    pass\n") == 0

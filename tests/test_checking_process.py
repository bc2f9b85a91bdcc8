"""The run's checking process: one server per run imports pytest and the steps once and forks a fresh
session for each verifying phase, so phases share the imports but never each other's memory; a session
past its deadline is killed with what it started, and a server that dies is replaced for the next phase.
The session asked for next is prepared (configured, then held) while the one before it runs; one prepared
but not asked for, or whose server died, ends without running anything."""

import json
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


CONFIGURED = """
import json, os, time
from pathlib import Path

def pytest_configure(config):
    test = Path(config.args[0])
    told = test.parent / f"{test.stem}.told"
    told.write_text(json.dumps({"pid": os.getpid(), "at": time.time()}))
    told.rename(test.parent / f"{test.stem}.configured")
"""
"""The test folder's conftest: each session says when it was configured, and in which process."""

RAN = """
import json, os, time
from pathlib import Path

def test_says_when_it_ran():
    told = Path(__file__).with_suffix(".told")
    told.write_text(json.dumps({"pid": os.getpid(), "at": time.time()}))
    told.rename(Path(__file__).with_suffix(".ran"))
"""


def argv_of(folder: Path, name: str, text: str) -> list[str]:
    test = folder / f"test_{name}.py"
    test.write_text(text)
    (folder / "conftest.py").write_text(CONFIGURED)
    return [str(test), "--rootdir", str(folder), "-q", "-s", "-p", "no:cacheprovider"]


def session(checker: Checker, folder: Path, name: str, text: str, seconds: float = 120, shown=None,
            then: list[str] | None = None) -> int | None:
    return checker.run(argv_of(folder, name, text), seconds, shown or (lambda text: None), then)


def said(folder: Path, name: str, what: str, seconds: float = 30) -> dict:
    """What session `name` wrote when it was configured or ran, waiting for it (it may still be configuring)."""
    path, until = folder / f"test_{name}.{what}", time.monotonic() + seconds
    while not path.exists() and time.monotonic() < until:
        time.sleep(0.05)
    return json.loads(path.read_text())


def _gone(pid: int, seconds: float = 10) -> bool:
    until = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < until:
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_every_session_is_forked_by_the_same_server_and_sees_nothing_an_earlier_one_left(checker, tmp_path):
    sees = argv_of(tmp_path, "sees", SEES)
    assert session(checker, tmp_path, "leaks", LEAKS, then=sees) == 0
    server = checker.server.pid
    assert checker.run(sees, 120, lambda text: None) == 0
    assert checker.server.pid == server


def test_the_session_asked_for_next_is_configured_while_the_one_before_runs_and_goes_on_when_asked(checker, tmp_path):
    following = argv_of(tmp_path, "following", RAN)
    assert session(checker, tmp_path, "first", "def test_ok():\n    pass\n", then=following) == 0
    prepared = said(tmp_path, "following", "configured")
    assert _alive(prepared["pid"]) and not (tmp_path / "test_following.ran").exists()
    asked = time.time()
    assert checker.run(following, 120, lambda text: None) == 0
    ran = said(tmp_path, "following", "ran")
    assert prepared["at"] < asked < ran["at"] and ran["pid"] == prepared["pid"]


def test_a_prepared_session_not_asked_for_ends_unrun_and_the_one_asked_for_runs_fresh(checker, tmp_path):
    assert session(checker, tmp_path, "first", "def test_ok():\n    pass\n", then=argv_of(tmp_path, "unused", RAN)) == 0
    unused = said(tmp_path, "unused", "configured")["pid"]
    assert session(checker, tmp_path, "other", RAN) == 0
    assert said(tmp_path, "other", "ran")["pid"] != unused
    assert _gone(unused), "the prepared session outlived the request for another"
    assert not (tmp_path / "test_unused.ran").exists()


def test_a_prepared_session_ends_unrun_when_its_server_is_killed(checker, tmp_path):
    assert session(checker, tmp_path, "first", "def test_ok():\n    pass\n", then=argv_of(tmp_path, "orphan", RAN)) == 0
    orphan = said(tmp_path, "orphan", "configured")["pid"]
    os.kill(checker.server.pid, signal.SIGKILL)
    assert _gone(orphan), "the prepared session outlived its server"
    assert not (tmp_path / "test_orphan.ran").exists()
    assert session(checker, tmp_path, "next", "def test_ok():\n    pass\n") == 0


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

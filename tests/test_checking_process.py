"""The run's checking process: one server per run imports pytest and the steps once and forks a fresh
session for each verifying phase, so phases share the imports but never each other's memory; a session
past its deadline is killed with what it started, and a server that dies is replaced for the next phase.
The session asked for next is prepared (configured, then held) while the one before it runs; one prepared
but not asked for, or whose server died, ends without running anything."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runbook import ROOT
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


SESSIONS = """
import json, os, time
from pathlib import Path

def _tell(what, **facts):
    folder = Path(__file__).parent / "sessions"
    folder.mkdir(exist_ok=True)
    told = folder / f"{os.getpid()}.told"
    told.write_text(json.dumps({"at": time.time(), **facts}))
    told.rename(folder / f"{os.getpid()}.{what}")

_tell("read")

def pytest_configure(config):
    _tell("configured", test=Path(config.args[0]).stem)
"""
"""The test folder's conftest: each session says, by its process id, when pytest read it (with the session's
configuration) and when pytest configured its plugins."""

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
    (folder / "conftest.py").write_text(SESSIONS)
    return [str(test), "--rootdir", str(folder), "-q", "-s", "-p", "no:cacheprovider"]


def session(checker: Checker, folder: Path, name: str, text: str, seconds: float = 120, shown=None,
            then: list[str] | None = None) -> int | None:
    return checker.run(argv_of(folder, name, text), seconds, shown or (lambda text: None), then)


def ran(folder: Path, name: str) -> dict:
    return json.loads((folder / f"test_{name}.ran").read_text())


def told(folder: Path, pid: int, what: str) -> dict | None:
    path = folder / "sessions" / f"{pid}.{what}"
    return json.loads(path.read_text()) if path.exists() else None


def prepared(folder: Path, besides: int, seconds: float = 30) -> int:
    """The process id of the session prepared after session `besides`, once pytest has read its configuration."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pids = {int(p.stem) for p in (folder / "sessions").glob("*.read")} - {besides}
        if pids:
            return pids.pop()
        time.sleep(0.05)
    raise AssertionError("no session was prepared")


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


def test_the_session_asked_for_next_is_prepared_while_the_one_before_runs_and_goes_on_when_asked(checker, tmp_path):
    assert session(checker, tmp_path, "first", RAN, then=argv_of(tmp_path, "following", RAN)) == 0
    held = prepared(tmp_path, besides=ran(tmp_path, "first")["pid"])
    time.sleep(0.5)
    assert _alive(held) and told(tmp_path, held, "configured") is None, "a prepared session went on unasked"
    asked = time.time()
    assert checker.run(argv_of(tmp_path, "following", RAN), 120, lambda text: None) == 0
    assert ran(tmp_path, "following")["pid"] == held
    assert told(tmp_path, held, "read")["at"] < asked < told(tmp_path, held, "configured")["at"], \
        "its plugins must configure (and stamp their times) once it is asked for"


def test_a_prepared_session_not_asked_for_ends_unrun_and_the_one_asked_for_runs_fresh(checker, tmp_path):
    assert session(checker, tmp_path, "first", RAN, then=argv_of(tmp_path, "unused", RAN)) == 0
    held = prepared(tmp_path, besides=ran(tmp_path, "first")["pid"])
    assert session(checker, tmp_path, "other", RAN) == 0
    assert ran(tmp_path, "other")["pid"] != held
    assert _gone(held), "the prepared session outlived the request for another"
    assert told(tmp_path, held, "configured") is None and not (tmp_path / "test_unused.ran").exists()


def test_a_prepared_session_ends_unrun_when_its_server_is_killed(checker, tmp_path):
    assert session(checker, tmp_path, "first", RAN, then=argv_of(tmp_path, "orphan", RAN)) == 0
    held = prepared(tmp_path, besides=ran(tmp_path, "first")["pid"])
    os.kill(checker.server.pid, signal.SIGKILL)
    assert _gone(held), "the prepared session outlived its server"
    assert told(tmp_path, held, "configured") is None and not (tmp_path / "test_orphan.ran").exists()
    assert session(checker, tmp_path, "next", RAN) == 0


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


def _collected(*options: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "features"), "--rootdir", str(ROOT), "-c",
                           str(ROOT / "pyproject.toml"), "--collect-only", "-q", "-p", "no:cacheprovider", *options],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_a_phases_session_binds_only_its_own_feature_file():
    every = _collected()
    health = _collected("--only-feature", "health")
    assert health == _collected("-m", "health")
    assert 0 < len(health) < len(every)


KILLED_RUNBOOK = """
import sys, time
from runbook.engine.checker import CHECKER
first, following = sys.argv[1].split("|"), sys.argv[2].split("|")
assert CHECKER.run(first, 120, lambda text: None, then=following) == 0
print(CHECKER.server.pid, CHECKER.prepared.output, flush=True)
time.sleep(300)
"""


def test_a_runbook_killed_with_a_prepared_session_leaves_neither_its_server_nor_the_session_nor_its_output(tmp_path):
    first, following = argv_of(tmp_path, "first", RAN), argv_of(tmp_path, "orphan", RAN)
    runbook = subprocess.Popen([sys.executable, "-c", KILLED_RUNBOOK, "|".join(first), "|".join(following)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        server, output = runbook.stdout.readline().split()
        held = prepared(tmp_path, besides=ran(tmp_path, "first")["pid"])
        assert Path(output).exists() and _alive(held)
    finally:
        runbook.kill()
        runbook.wait(30)
    assert _gone(int(server)) and _gone(held), "the checking process or its prepared session outlived the runbook"
    assert not Path(output).exists(), "the prepared session's output file outlived the runbook"
    assert told(tmp_path, held, "configured") is None and not (tmp_path / "test_orphan.ran").exists()


def test_a_runbook_killed_with_its_checking_process_leaves_an_output_folder_the_next_run_removes(tmp_path):
    first, following = argv_of(tmp_path, "first", RAN), argv_of(tmp_path, "orphan", RAN)
    runbook = subprocess.Popen([sys.executable, "-c", KILLED_RUNBOOK, "|".join(first), "|".join(following)],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        server, output = runbook.stdout.readline().split()
        held = prepared(tmp_path, besides=ran(tmp_path, "first")["pid"])
    finally:
        os.killpg(runbook.pid, signal.SIGKILL)  # the runbook and its checking process, as a killed deploy's tests do
        runbook.wait(30)
    assert _gone(int(server)) and _gone(held)
    folder = Path(output).parent
    assert Path(output).exists(), "nothing was left to remove: the test does not show the sweep"
    next_run = Checker()
    try:
        next_run.warm()
        assert not folder.exists(), "the killed runbook's output folder is still there"
    finally:
        next_run.stop()

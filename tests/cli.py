"""The runbook's tasks as a user runs them: `invoke` in a child process, to its end (`invoke`), or in the
background in a session of its own (`start_task`, `start_deploy`), watched through its journal
(`wait_for_phase`) and killed whole (`kill_session`). Every run gets the tests' secret in its environment
(`apps.SECRET`), which must never appear in what it writes."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runbook import ROOT

from tests.apps import SECRET


@dataclass
class Result:
    code: int
    output: str
    """Standard output and standard error together."""
    reports: Path
    stdout: str = ""

    @property
    def folder(self) -> Path:
        """This run's report folder, named on the last line the task printed."""
        marker = "record: "
        if marker in self.output:
            return Path(self.output.split(marker)[-1].split()[0]).parent
        (folder,) = [p for p in self.reports.iterdir() if p.is_dir()]
        return folder

    @property
    def record(self) -> dict:
        return json.loads((self.folder / "record.json").read_text())

    def scenario(self, name: str) -> dict:
        found = [s for p in self.record["phases"] for s in p["scenarios"] if s["scenario"] == name]
        assert found, f"no scenario {name!r} in the record"
        return found[0]


def _task(reports: Path, args: tuple[str, ...], extra_env: dict | None = None) -> tuple[list[str], dict]:
    """The argument list and environment of an invoke task run as a user would: its reports go to `reports`,
    the tests' secret is set."""
    env = os.environ | {"RUNBOOK_REPORTS": str(reports), "RUNBOOK_TEST_SECRET": SECRET} | (extra_env or {})
    return [sys.executable, "-m", "invoke", *args], env


def invoke(reports: Path, *args: str, timeout: float = 300, extra_env: dict | None = None) -> Result:
    """Run an invoke task to its end in a child process. Its output is printed, so a failing test's captured
    output shows what every task it ran said, cause and all."""
    argv, env = _task(reports, args, extra_env)
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"$ invoke {' '.join(args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}")
    return Result(result.returncode, result.stdout + result.stderr, reports, result.stdout)


def start_task(reports: Path, *args: str) -> subprocess.Popen:
    """An invoke task in the background, in a session of its own (so a test can kill it whole)."""
    argv, env = _task(reports, args)
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def kill_session(running: subprocess.Popen, seconds: float = 60) -> None:
    """SIGKILL every process of the session `running` leads (`start_task`'s) until none is left. Killing its
    process group is not enough: a command on a host runs under coreutils `timeout`, in a process group of its
    own, and would go on (a `switch` finishing after the kill, while the test reads the hosts)."""
    deadline = time.monotonic() + seconds
    while members := _session_members(running.pid):
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        running.poll()
        assert time.monotonic() < deadline, f"processes of the killed session still run: {members}"
        time.sleep(0.05)
    running.wait(timeout=seconds)


def _session_members(session: int) -> list[int]:
    """The live (not zombie) processes whose session is `session`."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            state, _, _, sid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:4]
            if int(sid) == session and state != "Z":
                members.append(int(pid))
    return members


def start_deploy(reports: Path, env_file: Path, version: str) -> subprocess.Popen:
    """`invoke deploy` in the background, in a session of its own."""
    return start_task(reports, "deploy", "--env", str(env_file), "--version", version)


def wait_for_phase(reports: Path, running: subprocess.Popen, version: str | None, phase: str, timeout: float = 120,
                   kind: str = "deploy", sequence: str = "deploy") -> None:
    """Wait until the running `kind` run (of `version`) has started `phase` of `sequence`, as its journal
    says; fail at once if the run ended instead."""
    deadline = time.monotonic() + timeout
    started = f'"phase started", "sequence": "{sequence}", "phase": "{phase}"'
    while time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()[0]
        for journal in reports.glob(f"*-{kind}-*/journal.jsonl"):
            text = journal.read_text()
            if (version is None or f'"version": "{version}"' in text) and started in text:
                return
        time.sleep(0.01)
    raise AssertionError(f"the {kind} never reached phase {phase} of its {sequence}")

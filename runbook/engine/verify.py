"""A verifying phase: the features tagged for it run in a child pytest process, so its report and
results stand alone. The child's output is read through the redactor and shown only with `--verbose`
(`runbook.console`); when the checks could not run, its last lines are the phase's evidence. The child
runs under the phase's deadline (`deadlines.checks` or its own); at the deadline its whole process group
is killed and the phase fails naming the deadline."""

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from pydantic import TypeAdapter

from runbook import ROOT, console
from runbook.engine.context import RunContext
from runbook.engine.run import PhaseResult, Run
from runbook.times import utc_now
from runbook.record.model import Scenario
from runbook.secrets import redact

SCENARIOS = TypeAdapter(list[Scenario])
"""The child's results file, read as the record's own model: what crosses the process boundary is typed."""
TAIL = 40
"""The last lines of the child's output kept as evidence when the checks could not run."""


def phase(run: Run, name: str, title: str, sequence: str, tag: str, version: str | None,
          context: RunContext) -> PhaseResult:
    """Run the features tagged `tag` against the run's environment; the report lands in the run folder."""
    result = PhaseResult(name, title, sequence, utc_now(), utc_now(), "passed")
    stem = run.folder / Path(result.report).stem
    results, context_file = stem.with_suffix(".json"), stem.with_suffix(".context.json")
    context.write(context_file)
    argv = [
        sys.executable, "-m", "pytest", str(ROOT / "features"),
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
        "-m", tag, "--env", run.env_arg, "--context", str(context_file),
        f"--html={stem}.html", "--self-contained-html", f"--junitxml={stem}.xml", f"--results={results}",
        f"--cucumber={stem}.cucumber.json",
        "--run-id", run.id, "--operator", run.operator, "-o", "generate_report_on_test=true",
        "-q", "-rfE", "--tb=line", "-p", "no:cacheprovider",
    ]
    if version:
        argv += ["--release-version", version]
    deadline, seconds = run.env.deadlines.for_checks(name)
    shown, tail = console.current(), deque[str](maxlen=TAIL)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                          start_new_session=True) as child:
        expired = threading.Event()
        timer = threading.Timer(seconds, lambda: (expired.set(), _kill(child)))
        timer.start()
        try:
            for line in child.stdout:
                tail.append(redact(line.rstrip("\n")))
                shown.output(tail[-1])
            child.wait()
        except BaseException:  # the run was interrupted: its checks stop with it
            _kill(child)
            raise
        finally:
            timer.cancel()
    result.scenarios = [s.model_dump() for s in SCENARIOS.validate_json(results.read_text())] if results.exists() else []
    result.finished = utc_now()
    if expired.is_set():
        result.outcome = "failed"
        result.error = f"the checks did not finish within {seconds} s (deadline {deadline}); they were stopped"
    elif child.returncode not in (0, 1) or not result.scenarios:
        result.outcome, result.error = "error", f"the checks could not run (pytest exit code {child.returncode})"
        result.evidence = [f"the last {len(tail)} lines their pytest wrote:\n" + "\n".join(tail)] if tail else []
    elif result.blocking:
        result.outcome = "failed"
    return result


def _kill(child: subprocess.Popen) -> None:
    """Kill the child and every process it started (its session's process group)."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # it has ended already
        pass

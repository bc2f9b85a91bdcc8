"""One run of the runbook: its id, its report folder, its phases (each a pytest run), its exit code.

Each phase runs the features tagged for it in a child pytest process, so its report and results
stand alone; the child's output is streamed to the terminal through the redactor.
"""

import getpass
import json
import os
import secrets as random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import ROOT, config, errors, local, record
from .config import Environment
from .package import validate_version
from .phases import GATE, Phase
from .secrets import redact


def reports_root() -> Path:
    """`reports/` in the project, or `$RUNBOOK_REPORTS` (tests point it elsewhere)."""
    return Path(os.environ.get("RUNBOOK_REPORTS", ROOT / "reports"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def operator() -> str:
    """Who runs this: `$RUNBOOK_OPERATOR`, else the login name."""
    return os.environ.get("RUNBOOK_OPERATOR") or getpass.getuser()


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


@dataclass
class PhaseResult:
    phase: Phase
    started: datetime
    finished: datetime
    scenarios: list[dict]
    pytest_exit: int

    @property
    def blocking(self) -> list[dict]:
        """Failed scenarios that block the release (all but those tagged advisory)."""
        return [s for s in self.scenarios if s["outcome"] == "failed" and "advisory" not in s["tags"]]

    @property
    def warnings(self) -> list[dict]:
        return [s for s in self.scenarios if s["outcome"] == "failed" and "advisory" in s["tags"]]

    @property
    def outcome(self) -> str:
        if self.pytest_exit not in (0, 1) or not self.scenarios:
            return "error"
        return "failed" if self.blocking else "passed"


@dataclass
class Run:
    env: Environment
    env_arg: str
    version: str | None
    id: str
    folder: Path
    started: datetime = field(default_factory=utc_now)
    operator: str = field(default_factory=operator)
    commit: str = field(default_factory=git_commit)
    phases: list[PhaseResult] = field(default_factory=list)


def start(env_arg: str, version: str | None, kind: str) -> Run:
    """Validate everything a run needs before anything runs; `ConfigError` (exit 2) otherwise."""
    if version is not None:
        validate_version(version)
    env = config.load_environment(env_arg)
    if env.local is not None:
        local.up(env)
    config.resolve_secrets(env)
    now = utc_now()
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{env.name}-{kind}-{random.token_hex(3)}"
    folder = reports_root() / run_id
    folder.mkdir(parents=True)
    return Run(env=env, env_arg=env_arg, version=version, id=run_id, folder=folder, started=now)


def run_phase(run: Run, phase: Phase) -> PhaseResult:
    """Run one phase's features against the run's environment; its report lands in the run folder."""
    results = run.folder / f"{phase.name}.json"
    argv = [
        sys.executable, "-m", "pytest", str(ROOT / "features"),
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
        "-m", phase.feature_tag, "--env", run.env_arg,
        f"--html={run.folder / f'{phase.name}.html'}", "--self-contained-html",
        f"--junitxml={run.folder / f'{phase.name}.xml'}", f"--results={results}",
        "--run-id", run.id, "--operator", run.operator, "-o", "generate_report_on_test=true",
        "-q", "-rfE", "--tb=line", "-p", "no:cacheprovider",
    ]
    if run.version:
        argv += ["--release-version", run.version]
    started = utc_now()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as child:
        for line in child.stdout:
            sys.stdout.write(redact(line))
        child.wait()
    scenarios = json.loads(results.read_text()) if results.exists() else []
    result = PhaseResult(phase, started, utc_now(), scenarios, child.returncode)
    run.phases.append(result)
    return result


def finish(run: Run) -> int:
    """Write the record and the indexes; the run's exit code."""
    code = errors.OK if all(p.outcome == "passed" for p in run.phases) else errors.FAILED
    record.write(run, code, utc_now())
    return code


def summary(result: PhaseResult) -> str:
    """What a person needs from the terminal: each failed check with its cause, and the verdict."""
    lines = [f"{'BLOCKING' if s in result.blocking else 'WARNING'}: {s['scenario']}: {s['message']}"
             for s in result.blocking + result.warnings]
    counts = {}
    for s in result.scenarios:
        counts[s["outcome"]] = counts.get(s["outcome"], 0) + 1
    tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no check ran"
    lines.append(f"{result.phase.name}: {result.outcome} ({tally})")
    return "\n".join(lines)


def gate(env_arg: str, version: str | None) -> int:
    """`invoke preflight`: run the release gate's phases; 0 when every blocking check passed."""
    run = start(env_arg, version, "preflight")
    for phase in GATE:
        print(redact(summary(run_phase(run, phase))))
    code = finish(run)
    print(f"record: {run.folder / 'index.html'}")
    return code

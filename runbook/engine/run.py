"""One run of the runbook: its id, its report folder, its journal, its phases' results.

A phase that verifies runs the features tagged for it in a pytest session of its own, so its report and
results stand alone (`verify.py`). Each journal event also goes to the terminal (`runbook.console`).
"""

import os
import secrets as random
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runbook import ROOT, console
from runbook.provenance import git_commit, operator
from runbook.environments import open_environment
from runbook.checks import outcomes
from runbook.config import Environment

from runbook.release.package import validate_version
from runbook.secrets import redact
from runbook.engine.journal import Journal
from runbook.times import stamp_ms, utc_now


def reports_root() -> Path:
    """`reports/` in the project, or `$RUNBOOK_REPORTS` (tests point it elsewhere)."""
    return Path(os.environ.get("RUNBOOK_REPORTS", ROOT / "reports"))


def report_name(phase: str, sequence: str) -> str:
    """`<phase>.html`; a rollback's phases are `rollback-<phase>.html` (they repeat some names)."""
    return f"rollback-{phase}.html" if sequence == "rollback" else f"{phase}.html"


@dataclass
class PhaseResult:
    """How one phase went: its outcome, and its scenarios (a verifying phase) or evidence (an action)."""

    name: str
    title: str
    sequence: str
    started: datetime
    finished: datetime
    outcome: str
    """passed, failed, error (could not run), skipped (did not apply) or not run (an earlier phase failed)."""
    scenarios: list[dict] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    error: str = ""
    refused: bool = False
    """The phase refused (exit 2) rather than failed: nothing it would change was changed."""

    @property
    def report(self) -> str:
        return report_name(self.name, self.sequence)

    @property
    def blocking(self) -> list[dict]:
        """Failed scenarios that block the release (all but those tagged advisory)."""
        return [s for s in self.scenarios if s["outcome"] == "failed" and "advisory" not in s["tags"]]

    @property
    def warnings(self) -> list[dict]:
        """Failed advisory scenarios, and waived ones: reported, not blocking."""
        return [s for s in self.scenarios
                if s["outcome"] == "failed" and "advisory" in s["tags"] or s["outcome"] == "waived"]

    @property
    def cause(self) -> str:
        """Why the phase failed, in one line per cause."""
        return self.error or "; ".join(f"{s['scenario']}: {s['message']}" for s in self.blocking)


@dataclass
class Run:
    env: Environment
    env_arg: str
    kind: str
    version: str | None
    id: str
    folder: Path
    started: datetime = field(default_factory=utc_now)
    operator: str = field(default_factory=operator)
    commit: str = field(default_factory=git_commit)
    runner: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    phases: list[PhaseResult] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    """What the record says beyond phases: release, backup, migrations, rollback, ..."""
    local_up: bool = False
    """Opening the environment found its local stack up (or started it): its phases need not look again."""

    @property
    def journal(self) -> Journal:
        return Journal(self.folder)

    def event(self, what: str, **details) -> None:
        """A journal event, also shown where the terminal shows events (`--json`)."""
        at = stamp_ms(utc_now())
        self.journal.write({"at": at, "event": what, **details})
        console.current().event(what, at=at, **details)


ACTING = ("deploy", "rollback", "backup")
"""The kinds of run that change the environment; the others (preflight, watch) only read it."""


def start(env_arg: str, version: str | None, kind: str) -> Run:
    """Validate everything a run needs before anything runs; `ConfigError` (exit 2) otherwise."""
    if version is not None:
        validate_version(version)
    env = open_environment(env_arg, start_local=kind in ACTING)
    now = utc_now()
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{env.name}-{kind}-{random.token_hex(3)}"
    folder = reports_root() / run_id
    folder.mkdir(parents=True)
    run = Run(env=env, env_arg=env_arg, kind=kind, version=version, id=run_id, folder=folder, started=now,
              local_up=env.local is not None)
    run.event("run started", kind=kind, version=version, environment=env.name, operator=run.operator,
              runner=run.runner, pid=run.pid)
    return run


def summary(result: PhaseResult) -> str:
    """What a person needs from the terminal: each failed check with its cause, and the verdict."""
    lines = [f"{'BLOCKING' if s in result.blocking else 'WARNING'}: {s['scenario']}: {s['message']}"
             for s in result.blocking + result.warnings]
    if result.scenarios:
        tally = outcomes.tally([s["outcome"] for s in result.scenarios])
    else:
        tally = result.error or (result.evidence[-1].splitlines()[0] if result.evidence else "done")
    lines.append(f"[{result.sequence}] {result.name}: {result.outcome} ({tally})")
    return redact("\n".join(lines))

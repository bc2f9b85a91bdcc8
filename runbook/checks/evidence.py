"""What each Gherkin step of a scenario did and showed: its status, duration and evidence, kept on the
test item while pytest-bdd runs it, and the `evidence` a step definition adds to."""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

from runbook import ROOT
from runbook.checks import idle
from runbook.findings import Finding, require
from runbook.secrets import redact
from runbook.times import stamp_ms

SCREENSHOTS = "screenshots"
"""The folder, beside the phase's HTML report, that holds the screenshots its steps show."""

STEPS = pytest.StashKey["Scenario"]()


@dataclass
class Step:
    keyword: str
    text: str
    status: str = "not run"
    duration: float = 0.0
    message: str = ""
    evidence: list[dict] = field(default_factory=list)
    started: float = 0.0
    line: int = 0
    """Its line in the feature file (for Cucumber JSON)."""


@dataclass
class Scenario:
    feature: str
    name: str
    tags: list[str]
    steps: list[Step]
    current: Step | None = None
    uri: str = ""
    """The feature file, from the project folder, and the scenario's line in it (for Cucumber JSON)."""
    line: int = 0


class Evidence:
    """What a step shows as proof: text (command output, diffs) and findings, all redacted: titles and
    subjects as well as bodies and details.

        >>> evidence.findings(findings)
        >>> evidence.text("pending migrations", "0002_add_index")
    """

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def _step(self) -> Step:
        return self._item.stash[STEPS].current

    def text(self, title: str, body: str) -> None:
        self._step().evidence.append({"title": redact(title), "text": redact(body)})

    def texts(self, bodies: dict[str, str]) -> None:
        for title, body in bodies.items():
            self.text(title, body)

    def screenshot(self, title: str, png: bytes) -> Path:
        """Keep a PNG screenshot in the report's folder (`screenshots/`, beside the HTML report; `reports/`
        without one) and show it in the step's evidence, by its path from that folder and its SHA-256."""
        htmlpath = self._item.config.getoption("htmlpath", None)
        folder = Path(htmlpath).resolve().parent if htmlpath else ROOT / "reports"
        stem = Path(htmlpath).stem if htmlpath else "pytest"
        evidence = self._step().evidence
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self._item.name}-{len(evidence)}-{title}".lower()).strip("-")[:120]
        path = folder / SCREENSHOTS / f"{stem}-{slug}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        evidence.append({"title": redact(title), "image": path.relative_to(folder).as_posix(),
                         "sha256": hashlib.sha256(png).hexdigest(), "bytes": len(png)})
        return path

    def checked(self, check: Callable[..., Any], *args: Any) -> Any:
        """What `check(*args)` found (`idle.checked`); when that was before the step asked, the step says when."""
        kept = idle.checked(check, *args)
        if kept.ahead:
            self.text("checked before this step", f"at {stamp_ms(kept.at)}, while earlier checks of this phase ran")
        return kept.found

    def findings(self, findings: list[Finding]) -> list[Finding]:
        rows = [{"subject": redact(f.subject), "ok": f.ok, "detail": redact(f.detail)} for f in findings]
        self._step().evidence.append({"title": "findings", "findings": rows})
        return findings

    def require(self, findings: list[Finding], nothing: str = "nothing to check") -> list[Finding]:
        """Show the findings, then fail naming every failed subject (`findings.require`)."""
        return require(self.findings(findings), nothing)

    def attested(self, statement: str) -> None:
        """Mark the step as a person's attestation rather than a machine's check."""
        step = self._step()
        step.status, step.message = "attested", redact(statement)

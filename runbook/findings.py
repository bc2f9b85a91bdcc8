"""What a check found about one subject, and the rule that turns findings into a pass or a failure."""

from dataclasses import dataclass

from runbook.errors import CheckFailed


@dataclass(frozen=True)
class Finding:
    """One subject's result, e.g. `Finding("host web1", False, "disk free on / is 12.0%, required 20%")`."""

    subject: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def require(findings: list[Finding], nothing: str = "nothing to check") -> list[Finding]:
    """Raise `CheckFailed` naming every failed subject; an empty list is a failure too (nothing ran)."""
    if not findings:
        raise CheckFailed(nothing)
    failed = [str(f) for f in findings if not f.ok]
    if failed:
        raise CheckFailed("; ".join(failed))
    return findings


class NotConfigured(Exception):
    """Nothing is configured for a check in this environment: its scenario is skipped, saying what is
    missing (raised by the check, turned into a skip by the pytest plugin)."""


def passed_with(subject: str, detail: str) -> list[Finding]:
    """A check with nothing to judge that passes by design (e.g. no pending migration), saying so."""
    return [Finding(subject, True, detail)]

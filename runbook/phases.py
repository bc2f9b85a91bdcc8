"""The runbook's phases as data, in runbook order. Tasks, status and the record read this list."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    feature_tag: str
    """The Gherkin tag (a pytest marker) of the scenarios that verify this phase."""


PREFLIGHT = Phase("preflight", "Pre-flight checklist (runbook Steps 1 to 5)", "preflight")

GATE = [PREFLIGHT]
"""What `invoke preflight` runs: the release gate."""

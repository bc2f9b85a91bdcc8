"""A phase of a sequence: an action on the environment and/or a feature that verifies it, and what
its failure leads to."""

from dataclasses import dataclass, field
from typing import Callable

from runbook.engine.deployment import Deployment

Action = Callable[[Deployment], list[str]]
"""Does the phase's work; returns the evidence lines; raises `ActionFailed` (or anything) on failure."""
ABANDON, ROLL_BACK, REPORT = "abandon", "roll back", "report"


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    action: Action | None = None
    feature: str | None = None
    """The Gherkin tag of the scenarios that verify this phase."""
    on_failure: str = ABANDON
    """ABANDON: nothing changed yet, release what the run took. ROLL_BACK: the environment changed, the
    rollback sequence follows. REPORT: the release is live and verified; say what did not finish."""
    applies: Callable[[Deployment], bool] = field(default=lambda d: True)
    skip: str = "does not apply: no release was live before this deploy"
    """What the record says when `applies` is false."""
    per_batch: bool = False
    """Runs once for each batch of the rollout, on that batch's hosts (`Deployment.hosts`)."""


def has_target(d: Deployment) -> bool:
    return d.target is not None

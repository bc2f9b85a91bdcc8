"""How a scenario ends, as InSpec has it, and which outcomes count toward success.

passed; attested (a person's statement, counted as passed); waived (failed, with a waiver in force:
reason, approver, expiry); not applicable (declared in the environment file with a reason, never
run); skipped (could not run, with its cause); failed. In a strict environment a `@critical` check
that cannot run fails instead of being skipped. pytest's own report (and so JUnit XML and the HTML
report) carries the same outcome: passed, failed, or skipped with the outcome and its reason.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from runbook.config import Environment, Waiver
from runbook.config.checks import Journey
from runbook.times import utc_now

if TYPE_CHECKING:
    import pytest

OUTCOMES = ("passed", "attested", "waived", "not applicable", "skipped", "failed")
"""Every outcome, in the order the verdict line counts them."""
JOURNEYS = get_args(Journey)
"""The scenario tags that name a journey of the app (see `endpoints.smoke.journeys`)."""
SUCCESS = frozenset({"passed", "attested", "waived", "not applicable"})
"""The outcomes that count toward success; `skipped` and `failed` do not."""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    message: str


def not_applicable(env: Environment | None, scenario: str, tags: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The reason the environment declares the scenario not applicable, or None: under `not_applicable`,
    or by not listing the journey it is tagged with (e.g. `@message_queue`) under `endpoints.smoke.journeys`."""
    if env is None:
        return None
    declared = next((n.reason for n in env.not_applicable if n.scenario == scenario), None)
    smoke = env.endpoints.smoke
    missing = sorted(set(tags) & set(JOURNEYS) - set(smoke.journeys if smoke else []))
    if declared is None and missing:
        declared = (f"the app of {env.name} has no {missing[0]} journey: endpoints.smoke.journeys in "
                    f"{env.source} does not list it")
    return declared


def _waiver(env: Environment | None, scenario: str) -> tuple[Waiver | None, str]:
    """The waiver in force for a scenario, and a note on one that has expired."""
    for waiver in env.waivers if env else []:
        if waiver.scenario == scenario:
            if waiver.expires < utc_now().date():
                return None, f" (its waiver expired on {waiver.expires})"
            return waiver, ""
    return None, ""


def judge(env: Environment | None, scenario: str, tags: list[str], pytest_outcome: str, message: str,
          attested: bool, declared: str | None) -> Verdict:
    """The scenario's outcome from what pytest saw and what the environment declares."""
    if declared is not None:
        return Verdict("not applicable", declared)
    if pytest_outcome == "skipped":
        if env is not None and env.strict and "critical" in tags:
            return Verdict("failed", f"a critical check that could not run, in a strict environment: {message} "
                                     f"(configure what it needs, or declare it under `not_applicable` with a reason)")
        return Verdict("skipped", message)
    if pytest_outcome == "passed":
        return Verdict("attested" if attested else "passed", message)
    waiver, note = _waiver(env, scenario)
    if waiver is not None:
        return Verdict("waived", f"{message} (waived by {waiver.approved_by} until {waiver.expires}: "
                                 f"{waiver.reason})")
    return Verdict("failed", message + note)


def carry(report: "pytest.TestReport", location: tuple[str, int], verdict: Verdict) -> None:
    """Make pytest's report say the verdict: JUnit XML and the HTML report read it from there."""
    if verdict.outcome in ("passed", "attested"):
        return
    if verdict.outcome == "failed":
        if report.skipped:
            report.outcome, report.longrepr = "failed", verdict.message
        return
    label = "" if verdict.outcome == "skipped" else f"{verdict.outcome}: "
    report.outcome, report.longrepr = "skipped", (*location, f"Skipped: {label}{verdict.message}")


def tally(outcomes: list[str]) -> str:
    """The verdict line's counts, every outcome named: "12 passed, 0 attested, ..., 1 failed"."""
    return ", ".join(f"{outcomes.count(o)} {o}" for o in OUTCOMES)

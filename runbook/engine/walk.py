"""Running a sequence: each phase in order, consecutive per-batch phases once for each batch of the
rollout; the first phase that did not pass stops the walk."""

import traceback
from dataclasses import replace

from runbook.engine import sequences, verify
from runbook.engine.actions.lock import progress
from runbook.engine.deployment import Deployment
from runbook.engine.phase import Phase
from runbook import errors
from runbook.engine.run import PhaseResult, summary
from runbook.engine.signals import Interrupted
from runbook.hosts.connection import in_phase
from runbook.times import utc_now
from runbook.errors import ActionFailed, CheckFailed, RunbookError
from runbook.record import report
from runbook.release import rollout
from runbook.secrets import redact

Failure = tuple[Phase, PhaseResult]
"""A phase that did not pass, and its result."""


def run_phase(d: Deployment, sequence: str, phase: Phase) -> PhaseResult:
    """Run one phase; whatever goes wrong in it (of any type, a signal included) is its failure."""
    run = d.run
    started = utc_now()
    result = PhaseResult(phase.name, phase.title, sequence, started, started, "passed")
    try:
        if phase is not sequences.LOCK:
            progress(d, phase.name, sequence)
        run.event("phase started", sequence=sequence, phase=phase.name)
        with in_phase(phase.name):
            if not phase.applies(d):
                result.outcome, result.evidence = "skipped", [phase.skip]
            elif phase.feature:
                result = verify.phase(run, phase.name, phase.title, sequence, phase.feature, d.verifying_version,
                                      d.context())
            else:
                result.evidence = [redact(line) for line in phase.action(d)]
    except (ActionFailed, CheckFailed) as e:
        result.outcome, result.error = "failed", redact(str(e))
    except RunbookError as e:  # a refusal: exit 2 when nothing changed yet
        result.outcome, result.error, result.refused = "failed", redact(str(e)), e.exit_code == errors.REFUSED
    except (Exception, KeyboardInterrupt, Interrupted) as e:  # any other fault is still this phase's failure
        result.outcome, result.error = "failed", redact(f"{type(e).__name__}: {e}")
        result.evidence.append(redact(traceback.format_exc()))
    result.finished = utc_now()
    if not (run.folder / result.report).exists():
        report.phase_report(run, result)
    run.phases.append(result)
    run.event("phase finished", sequence=sequence, phase=phase.name, outcome=result.outcome, error=result.error)
    print(summary(result), flush=True)
    return result


def walk(d: Deployment, sequence: str, phases: list[Phase]) -> Failure | None:
    """Run the phases in order; consecutive per-batch phases run once for each batch of the rollout.
    The first phase that did not pass, or None."""
    index = 0
    while index < len(phases):
        group = [phases[index]]
        while group[-1].per_batch and index + len(group) < len(phases) and phases[index + len(group)].per_batch:
            group.append(phases[index + len(group)])
        index += len(group)
        failed = _walk_batches(d, sequence, group) if group[0].per_batch else _walk_phase(d, sequence, group[0])
        if failed:
            return failed
    return None


def _walk_phase(d: Deployment, sequence: str, phase: Phase) -> Failure | None:
    result = run_phase(d, sequence, phase)
    return None if result.outcome in ("passed", "skipped") else (phase, result)


def _walk_batches(d: Deployment, sequence: str, group: list[Phase]) -> Failure | None:
    """The group of phases for each batch in turn; with several batches each phase's name and title say
    which batch it is (`stop-2`, "... (batch 2 of 3: web2, web3)")."""
    batches = rollout.plan(d.env)
    try:
        for number, batch in enumerate(batches, 1):
            d.batch = batch
            for phase in group:
                if len(batches) > 1:
                    phase = replace(phase, name=f"{phase.name}-{number}", title=f"{phase.title} (batch {number} of "
                                    f"{len(batches)}: {', '.join(h.name for h in batch)})")
                failed = _walk_phase(d, sequence, phase)
                if failed:
                    return failed
    finally:
        d.batch = None
    return None

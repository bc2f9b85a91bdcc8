"""Running a sequence: each phase in order, consecutive per-batch phases once for each batch of the
rollout; the first phase that did not pass stops the walk."""

import traceback
from dataclasses import replace

from runbook.engine import sequences, signals, verify, warmup
from runbook.engine.actions.lock import progress
from runbook.engine.deployment import Deployment
from runbook.engine.phase import Phase
from runbook import console, errors
from runbook.engine.run import PhaseResult, summary
from runbook.hosts import deadline
from runbook.times import between, utc_now
from runbook.errors import ActionFailed, CheckFailed, RunbookError
from runbook.record import report
from runbook.release import rollout
from runbook.secrets import redact
from runbook.watch import charts

Failure = tuple[Phase, PhaseResult]
"""A phase that did not pass, and its result."""


def run_phase(d: Deployment, sequence: str, phase: Phase, following: Phase | None = None) -> PhaseResult:
    """Run one phase; whatever goes wrong in it (of any type, a signal included) is its failure. `following`:
    the walk's next verifying phase, whose session a verifying phase has the checking process prepare while
    its own runs."""
    run = d.run
    shown = console.current()
    shown.phase_started(sequence, phase.name, phase.title)
    started = utc_now()
    result = PhaseResult(phase.name, phase.title, sequence, started, started, "passed")
    try:
        with signals.in_phase(), deadline.in_phase(phase.name):
            if phase is not sequences.LOCK:
                progress(d, phase.name, sequence)
            run.event("phase started", sequence=sequence, phase=phase.name, title=phase.title)
            if not phase.applies(d):
                result.outcome, result.evidence = "skipped", [phase.skip]
            elif phase.feature:
                then = following and verify.argv(run, following.name, sequence, following.feature,
                                                 d.verifying_version)
                result = verify.phase(run, phase.name, phase.title, sequence, phase.feature, d.verifying_version,
                                      d.context(), then)
            else:
                result.evidence = [redact(line) for line in phase.action(d)]
    except (ActionFailed, CheckFailed) as e:
        result.outcome, result.error = "failed", redact(str(e))
        result.evidence += [redact(line) for line in getattr(e, "evidence", [])]
    except RunbookError as e:  # a refusal: exit 2 when nothing changed yet
        result.outcome, result.error, result.refused = "failed", redact(str(e)), e.exit_code == errors.REFUSED
    except (Exception, KeyboardInterrupt, signals.Interrupted) as e:  # any other fault is still this phase's failure
        result.outcome, result.error = "failed", redact(f"{type(e).__name__}: {e}")
        result.evidence.append(redact(traceback.format_exc()))
    result.finished = utc_now()
    if not (run.folder / result.report).exists():
        report.phase_report(run, result)
    run.phases.append(result)
    seconds = between(result.started, result.finished)
    run.event("phase finished", sequence=sequence, phase=phase.name, outcome=result.outcome, error=result.error,
              seconds=seconds)
    shown.phase_finished(_shown(result), result.outcome, seconds)
    return result


def _shown(result: PhaseResult) -> str:
    """What the terminal says of a finished phase: its summary, after the evidence of why it could not
    run when its checks could not (the last lines their pytest wrote, `verify.phase`)."""
    return "\n".join([*result.evidence, summary(result)] if result.outcome == "error" else [summary(result)])


def walk(d: Deployment, sequence: str, phases: list[Phase]) -> Failure | None:
    """Run the phases in order; consecutive per-batch phases run once for each batch of the rollout.
    The first phase that did not pass, or None; every phase after it is recorded as not run."""
    steps = _batched(d, phases)
    outside = d.batch
    try:
        for index, (phase, batch) in enumerate(steps):
            d.batch = batch if phase.per_batch else outside
            if phase.feature:
                warmup.ahead("the record's pages", report.compile_pages)
            if sequences.waits_before_bake(phase, [later for later, _ in steps[index + 1:]]):
                warmup.ahead("pyplot", charts.agg_pyplot)
            result = run_phase(d, sequence, phase, next((p for p, _ in steps[index + 1:] if p.feature), None))
            if result.outcome not in ("passed", "skipped"):
                for later, _ in steps[index + 1:]:
                    _not_run(d, sequence, later, f"not run: '{result.title}' {result.outcome} before it")
                return phase, result
    finally:
        d.batch = outside
    return None


def _batched(d: Deployment, phases: list[Phase]) -> list[tuple[Phase, list | None]]:
    """The phases as they run, each with its batch: consecutive per-batch phases once for each batch of
    the rollout, named for it when there are several (`stop-2`, "... (batch 2 of 3: web2, web3)")."""
    steps: list[tuple[Phase, list | None]] = []
    index = 0
    while index < len(phases):
        if not phases[index].per_batch:
            steps.append((phases[index], None))
            index += 1
            continue
        group = [phases[index]]
        while index + len(group) < len(phases) and phases[index + len(group)].per_batch:
            group.append(phases[index + len(group)])
        index += len(group)
        batches = rollout.plan(d.env)
        for number, batch in enumerate(batches, 1):
            for phase in group:
                if len(batches) > 1:
                    phase = replace(phase, name=f"{phase.name}-{number}", title=f"{phase.title} (batch {number} of "
                                    f"{len(batches)}: {', '.join(h.name for h in batch)})")
                steps.append((phase, batch))
    return steps


def _not_run(d: Deployment, sequence: str, phase: Phase, reason: str) -> None:
    """A phase the run did not reach: in the record and with a short page of its own, saying why."""
    now = utc_now()
    result = PhaseResult(phase.name, phase.title, sequence, now, now, "not run", error=reason)
    report.phase_report(d.run, result)
    d.run.phases.append(result)

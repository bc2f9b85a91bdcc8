"""The run's record: `record.json`, an HTML report for each action phase, the run's `index.html`,
and `reports/index.html` listing every run.
"""

from datetime import datetime
from typing import TYPE_CHECKING

import jinja2

from runbook.record.model import Record
from runbook.secrets import redact
from runbook.times import between, stamp

if TYPE_CHECKING:
    from runbook.engine.run import PhaseResult, Run

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("runbook.record", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
OUTCOMES = {0: "passed", 1: "failed", 2: "refused", 3: "needs a human"}
PAGES = ("run.html", "phase.html", "history.html")
"""The templates of every run's pages."""


def _phase(p: "PhaseResult") -> dict:
    """A phase as `PhaseRecord` describes it (validated with the whole record, at the end of the run)."""
    return {
        "name": p.name,
        "title": p.title,
        "sequence": p.sequence,
        "outcome": p.outcome,
        "started": stamp(p.started),
        "finished": stamp(p.finished),
        "duration_seconds": between(p.started, p.finished),
        "report": p.report,
        "junit": p.report.replace(".html", ".xml") if p.scenarios else None,
        "error": p.error,
        "evidence": p.evidence,
        "blocking_failures": [s["scenario"] for s in p.blocking],
        "warnings": [s["scenario"] for s in p.warnings],
        "scenarios": p.scenarios,
    }


def build(run: "Run", code: int, finished: datetime) -> Record:
    """The run's record; a fact `Record` does not define is refused."""
    return Record.model_validate({
        "run_id": run.id,
        "kind": run.kind,
        "environment": run.env.name,
        "environment_file": str(run.env.source),
        "hosts": [{"name": h.name, "spec": h.spec, "roles": h.roles} for h in run.env.hosts],
        "version": run.version,
        "operator": run.operator,
        "runner": f"{run.runner} (pid {run.pid})",
        "git_commit": run.commit,
        "started": stamp(run.started),
        "finished": stamp(finished),
        "duration_seconds": between(run.started, finished),
        "outcome": OUTCOMES[code],
        "exit_code": code,
        **run.facts,
        "phases": [_phase(p) for p in run.phases],
        "journal": "journal.jsonl",
    })


def compile_pages() -> None:
    """Compile the templates of every run's pages, which Jinja then keeps (`warmup`: they took 0.07 s of the
    run's end)."""
    for name in PAGES:
        TEMPLATES.get_template(name)


def phase_report(run: "Run", result: "PhaseResult") -> None:
    """The HTML report of an action phase: what it did, on what evidence, and how it ended."""
    page = TEMPLATES.get_template("phase.html").render(run_id=run.id, environment=run.env.name, phase=_phase(result))
    (run.folder / result.report).write_text(redact(page))


def write(run: "Run", code: int, finished: datetime) -> dict:
    """`record.json` first, then the page; a page that cannot be rendered never costs the record.
    Returns the record as `record.json` holds it."""
    record = build(run, code, finished)
    (run.folder / "record.json").write_text(redact(record.text()))
    data = record.data()
    try:
        page = TEMPLATES.get_template("run.html").render(record=data)
    except jinja2.TemplateError as e:
        page = f"<!DOCTYPE html><title>{run.id}</title><p>The page could not be rendered ({e}); see record.json.</p>"
    (run.folder / "index.html").write_text(redact(page))
    return data

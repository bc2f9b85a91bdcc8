"""The run's record: `record.json`, an HTML report for each action phase, the run's `index.html`,
and `reports/index.html` listing every run.
"""

import json
from datetime import datetime
from typing import TYPE_CHECKING

import jinja2

from runbook.secrets import redact

if TYPE_CHECKING:
    from .run import PhaseResult, Run

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("runbook.record", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
OUTCOMES = {0: "passed", 1: "failed", 2: "refused", 3: "needs a human"}


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _phase(p: "PhaseResult") -> dict:
    return {
        "name": p.name,
        "title": p.title,
        "sequence": p.sequence,
        "outcome": p.outcome,
        "started": _time(p.started),
        "finished": _time(p.finished),
        "duration_seconds": round((p.finished - p.started).total_seconds(), 3),
        "report": p.report,
        "junit": p.report.replace(".html", ".xml") if p.scenarios else None,
        "error": p.error,
        "evidence": p.evidence,
        "blocking_failures": [s["scenario"] for s in p.blocking],
        "warnings": [s["scenario"] for s in p.warnings],
        "scenarios": p.scenarios,
    }


def build(run: "Run", code: int, finished: datetime) -> dict:
    return {
        "run_id": run.id,
        "kind": run.kind,
        "environment": run.env.name,
        "environment_file": str(run.env.source),
        "hosts": [{"name": h.name, "spec": h.spec, "roles": h.roles} for h in run.env.hosts],
        "version": run.version,
        "operator": run.operator,
        "runner": f"{run.runner} (pid {run.pid})",
        "git_commit": run.commit,
        "started": _time(run.started),
        "finished": _time(finished),
        "duration_seconds": round((finished - run.started).total_seconds(), 3),
        "outcome": OUTCOMES[code],
        "exit_code": code,
        **run.facts,
        "phases": [_phase(p) for p in run.phases],
        "journal": "journal.jsonl",
    }


def phase_report(run: "Run", result: "PhaseResult") -> None:
    """The HTML report of an action phase: what it did, on what evidence, and how it ended."""
    page = TEMPLATES.get_template("phase.html").render(run_id=run.id, environment=run.env.name, phase=_phase(result))
    (run.folder / result.report).write_text(redact(page))


def write(run: "Run", code: int, finished: datetime) -> dict:
    """`record.json` first, then the page; a page that cannot be rendered never costs the record."""
    data = build(run, code, finished)
    (run.folder / "record.json").write_text(redact(json.dumps(data, indent=2)))
    try:
        page = TEMPLATES.get_template("run.html").render(record=data)
    except jinja2.TemplateError as e:
        page = f"<!DOCTYPE html><title>{run.id}</title><p>The page could not be rendered ({e}); see record.json.</p>"
    (run.folder / "index.html").write_text(redact(page))
    return data

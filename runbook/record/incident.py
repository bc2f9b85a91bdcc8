"""The incident record (Steps 17 and 18): written for every rollback or failed run, from its journal
and record: the problem, a timeline with UTC times, the actions taken, the trigger's evidence, and an
empty post-incident review for the people who will hold it.
"""

from pathlib import Path

from runbook.record.report import TEMPLATES
from runbook.secrets import redact


FILES = {"html": "incident.html", "markdown": "incident.md"}


def needed(code: int, facts: dict) -> bool:
    """Every rollback or failed run gets an incident record."""
    return code in (1, 3) or "rollback" in facts


def facts(record: dict, events: list[dict]) -> dict:
    failed = [p for p in record["phases"] if p["outcome"] in ("failed", "error")]
    first = failed[0] if failed else None
    problem = (record.get("rollback") or {}).get("reason") or (
        f"{first['title']} failed: {first['error'] or '; '.join(first['blocking_failures'])}" if first else record["outcome"])
    evidence = [
        f"{s['scenario']}: {s['message']}" for p in failed for s in p["scenarios"] if s["outcome"] == "failed"
    ] + [p["error"] for p in failed if p["error"]]
    return {
        "record": record,
        "problem": problem,
        "timeline": [e for e in events if e["event"] != "phase started"],
        "actions": [f"{p['sequence']}: {p['title']}: {p['outcome']}" for p in record["phases"]],
        "evidence": evidence,
    }


def write(folder: Path, record: dict, events: list[dict]) -> None:
    """`incident.md` and `incident.html` in the run folder."""
    data = facts(record, events)
    for name in FILES.values():
        (folder / name).write_text(redact(TEMPLATES.get_template(name).render(**data)))

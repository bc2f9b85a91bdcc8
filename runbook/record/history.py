"""`reports/index.html`: every run, newest first, and the runbook's success metrics (Step 22) for each
environment, computed from the records: deployment time, rollback frequency, change failure rate and
time to restore service, each drawn as a small chart.

A chart is drawn only when its deploys changed: it is kept under `reports/.charts/`, named by the digest
of what it shows, so a run that adds no deploy (a preflight, a watch) does not start matplotlib.
"""

import hashlib
import json
from pathlib import Path
from statistics import median

from runbook.record import killed
from runbook.record.report import TEMPLATES
from runbook.times import parse
from runbook.watch import charts

FAILED = ("failed", "needs a human", "killed")


def _seconds(start: str, end: str) -> float:
    return (parse(end) - parse(start)).total_seconds()


def restore_seconds(record: dict) -> float | None:
    """From the phase whose failure triggered the rollback to the end of the rollback; for a killed run,
    from its last event to the end of the recovery."""
    if record["outcome"] == "killed":
        return _seconds(record["finished"], record["restored"]) if "restored" in record else None
    phases = record["phases"]
    rollback = [p for p in phases if p["sequence"] == "rollback"]
    failed = [p for p in phases if p["sequence"] == "deploy" and p["outcome"] in ("failed", "error")]
    if not rollback or not failed or rollback[-1]["outcome"] != "passed":
        return None
    return _seconds(failed[0]["finished"], rollback[-1]["finished"])


def metrics(records: list[dict], drawn: "Drawn | None" = None) -> dict[str, dict]:
    """Per environment: the figures of Step 22 over its deploys (refused deploys changed nothing: not counted);
    `drawn`: the charts drawn before, reused where their deploys are the same (without it, each is drawn)."""
    result = {}
    for env in sorted({r["environment"] for r in records}):
        deploys = sorted((r for r in records if r["environment"] == env and r.get("kind") == "deploy"
                          and r["outcome"] != "refused"), key=lambda r: r["started"])
        manual = [r for r in records if r["environment"] == env and r.get("kind") == "rollback" and r["outcome"] == "passed"]
        rolled_back = [r for r in deploys if "rollback" in r or "recovered_by" in r]
        restores = [s for s in map(restore_seconds, rolled_back) if s is not None]
        passed = [r["duration_seconds"] for r in deploys if r["outcome"] == "passed"]
        count = len(deploys)
        result[env] = {
            "deploys": count,
            "deployment_time_seconds": round(median(passed), 1) if passed else None,
            "rollbacks": len(rolled_back) + len(manual),
            "rollback_frequency": round((len(rolled_back) + len(manual)) / count, 3) if count else None,
            "change_failure_rate": round(sum(r["outcome"] in FAILED for r in deploys) / count, 3) if count else None,
            "time_to_restore_seconds": round(median(restores), 1) if restores else None,
            "chart": (drawn.chart(deploys) if drawn else chart(deploys)) if deploys else "",
        }
    return result


def chart(deploys: list[dict]) -> str:
    """An inline SVG: each deploy's duration, green when it passed, red when it failed or rolled back."""
    figure, axes = charts.agg_pyplot().subplots(figsize=(4.5, 1.8), dpi=80)
    colors = ["#1a7f37" if r["outcome"] == "passed" else "#b42318" for r in deploys]
    axes.bar(range(len(deploys)), [r["duration_seconds"] for r in deploys], color=colors)
    axes.set_xticks(range(len(deploys)), [r.get("version") or "" for r in deploys], fontsize=7, rotation=30)
    axes.set_ylabel("seconds", fontsize=7)
    axes.set_title("deploy duration (red: failed or rolled back)", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return charts.svg(figure)


class Drawn:
    """Charts drawn before, kept in `folder` by the digest of what they show; `prune` removes those no page
    shows any more."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.used = folder, set()

    def chart(self, deploys: list[dict]) -> str:
        shown = [[r["outcome"], r["duration_seconds"], r.get("version")] for r in deploys]
        kept = self.folder / f"{hashlib.sha256(json.dumps(shown).encode()).hexdigest()}.svg"
        self.used.add(kept)
        if kept.exists():
            return kept.read_text()
        svg = chart(deploys)
        self.folder.mkdir(exist_ok=True)
        kept.write_text(svg)
        return svg

    def prune(self) -> None:
        for old in set(self.folder.glob("*.svg")) - self.used:
            old.unlink()


def write(reports: Path) -> None:
    """Rewrite `reports/index.html` from every readable `record.json` under `reports/`, and every run
    killed before it wrote one (from its journal)."""
    records = []
    for path in sorted(reports.glob("*/record.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    unfinished = [f for f in sorted(reports.glob("*/journal.jsonl")) if not (f.parent / "record.json").exists()]
    records += [s for s in (killed.summary(f.parent, records) for f in unfinished) if s is not None]
    records.sort(key=lambda r: r["run_id"], reverse=True)
    drawn = Drawn(reports / ".charts")
    page = TEMPLATES.get_template("history.html").render(runs=records, metrics=metrics(records, drawn))
    drawn.prune()
    (reports / "index.html").write_text(page)

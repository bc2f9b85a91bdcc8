"""`reports/index.html`: every run, newest first, and the runbook's success metrics (Step 22) for each
environment, computed from the records: deployment time, rollback frequency, change failure rate and
time to restore service, each drawn as a small chart.

A chart is drawn only when its deploys changed: it is kept under `reports/.charts/`, named by the digest
of what it shows, so a run that adds no deploy (a preflight, a watch) does not start matplotlib.
"""

import hashlib
import json
import math
from pathlib import Path
from statistics import median

from runbook.record.report import TEMPLATES
from runbook.record.summaries import RunSummary, runs
from runbook.watch import charts

FAILED = ("failed", "needs a human", "killed")
CHARTED = 50
"""A chart shows its environment's last this many deploys: more bars would be neither readable nor small."""
LABELLED = 12
"""At most this many bars are named by their version (every k-th, the newest always): more labels overlap."""


def metrics(summaries: list[RunSummary], drawn: "Drawn | None" = None) -> dict[str, dict]:
    """Per environment: the figures of Step 22 over its deploys (refused deploys changed nothing: not counted);
    `drawn`: the charts drawn before, reused where their deploys are the same (without it, each is drawn)."""
    result = {}
    for env in sorted({r.environment for r in summaries}):
        deploys = sorted((r for r in summaries if r.environment == env and r.kind == "deploy"
                          and r.outcome != "refused"), key=lambda r: r.started)
        manual = [r for r in summaries if r.environment == env and r.kind == "rollback" and r.outcome == "passed"]
        rolled_back = [r for r in deploys if r.rolled_back or r.recovered_by]
        restores = [s for s in (r.time_to_restore for r in rolled_back) if s is not None]
        passed = [r.duration_seconds for r in deploys if r.outcome == "passed"]
        count, charted = len(deploys), deploys[-CHARTED:]
        result[env] = {
            "deploys": count,
            "deployment_time_seconds": round(median(passed), 1) if passed else None,
            "rollbacks": len(rolled_back) + len(manual),
            "rollback_frequency": round((len(rolled_back) + len(manual)) / count, 3) if count else None,
            "change_failure_rate": round(sum(r.outcome in FAILED for r in deploys) / count, 3) if count else None,
            "time_to_restore_seconds": round(median(restores), 1) if restores else None,
            "chart": (drawn.chart(charted) if drawn else chart(charted)) if deploys else "",
        }
    return result


MARGINS = {"left": 0.13, "right": 0.97, "top": 0.82, "bottom": 0.28}
"""The chart's layout, fixed for its known labels (versions at 30 degrees): fitting it each time
(`tight_layout`) took 0.08 s of every deploy's end."""


def chart(deploys: list[RunSummary]) -> str:
    """An inline SVG: each deploy's duration, green when it passed, red when it failed or rolled back."""
    figure, axes = charts.agg_pyplot().subplots(figsize=(4.5, 1.8), dpi=80)
    colors = ["#1a7f37" if r.outcome == "passed" else "#b42318" for r in deploys]
    axes.bar(range(len(deploys)), [r.duration_seconds for r in deploys], color=colors)
    every = math.ceil(len(deploys) / LABELLED)
    ticks = range(len(deploys) - 1, -1, -every)
    axes.set_xticks(ticks, [deploys[i].version or "" for i in ticks], fontsize=7, rotation=30)
    axes.set_ylabel("seconds", fontsize=7)
    axes.set_title(f"last {len(deploys)} deploys' duration (red: failed or rolled back)", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    figure.subplots_adjust(**MARGINS)
    return charts.svg(figure)


class Drawn:
    """Charts drawn before, kept in `folder` by the digest of what they show; `prune` removes those no page
    shows any more."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.used = folder, set()

    def chart(self, deploys: list[RunSummary]) -> str:
        shown = [[r.outcome, r.duration_seconds, r.version] for r in deploys]
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
    """Rewrite `reports/index.html` from every run under `reports/` (`summaries`)."""
    listed = runs(reports)
    drawn = Drawn(reports / ".charts")
    page = TEMPLATES.get_template("history.html").render(runs=listed, metrics=metrics(listed, drawn))
    drawn.prune()
    (reports / "index.html").write_text(page)

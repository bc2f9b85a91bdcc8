"""The release watch as a chart for the run's report: an inline SVG drawn with matplotlib (Agg); `svg`
turns any figure of the reports into SVG text.

    svg = charts.bake_chart(before, result, env)   # `before` from watch.baseline, `result` from watch.bake
"""

import io
from collections.abc import Callable
from datetime import timezone
from types import ModuleType
from typing import TYPE_CHECKING

from runbook.config import Environment
from runbook.watch.bake import BakeResult, Baseline
from runbook.watch.samples import Sample
from runbook.watch.windows import latency_limit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BASELINE = "#8c959f"
RELEASE = "#0969da"
LIMIT = "#b42318"
MISSING = "#bf8700"
MARGINS = {"left": 0.07, "right": 0.79, "top": 0.93, "bottom": 0.12, "hspace": 0.12}
"""The bake chart's layout, fixed: its labels are of known lengths, and fitting them each time (`tight_layout`)
took half of the chart's 0.11 s, inside the bake phase."""


def bake_chart(baseline: Baseline, result: BakeResult, env: Environment) -> str:
    """Error rate and p95 latency over time (UTC): the baseline's samples (grey) then the release's (blue),
    the thresholds (red, dashed), the baseline's level (grey, dotted), samples without data (amber
    lines), and a fired trigger (a red line where it fired, shaded over the window its condition held)."""
    pyplot = agg_pyplot()
    from matplotlib import dates, rc_context

    watch = env.watch
    release = [o.sample for o in result.samples]
    p95_limit = latency_limit(watch, baseline.p95_seconds)
    with rc_context({"svg.fonttype": "none", "font.size": 7}):
        figure, (errors, latency) = pyplot.subplots(2, 1, sharex=True, figsize=(8, 3.8), dpi=80)
        _panel(errors, baseline.samples, release, lambda s: _percent(s.error_rate), "error rate (%)",
               _percent(baseline.error_rate), watch.error_rate * 100, f"threshold {watch.error_rate * 100:g}%")
        _panel(latency, baseline.samples, release, lambda s: s.p95_seconds, "p95 latency (s)",
               baseline.p95_seconds, p95_limit, f"{watch.latency_factor:g} x baseline (floor {watch.latency_floor_seconds:g} s)")
        if result.fired:
            for axes in (errors, latency):
                axes.axvspan(result.fired.since, result.fired.fired_at, color=LIMIT, alpha=0.12)
                axes.axvline(result.fired.fired_at, color=LIMIT, linewidth=1.5)
        errors.set_title(f"fired: {result.fired}" if result.fired else "no trigger fired", loc="left")
        latency.xaxis.set_major_formatter(dates.DateFormatter("%H:%M:%S", tz=timezone.utc))
        latency.set_xlabel("UTC")
        figure.subplots_adjust(**MARGINS)
        return svg(figure)


def _panel(axes, before: list[Sample], after: list[Sample], read: Callable[[Sample], float | None], label: str,
           level: float | None, limit: float | None, limit_label: str) -> None:
    """One measure over time: a line for the baseline, one for the release, with their reference levels."""
    for samples, color, name in ((before, BASELINE, "baseline"), (after, RELEASE, "release")):
        values = [float("nan") if (value := read(s)) is None else value for s in samples]
        axes.plot([s.at for s in samples], values, color=color, marker=".", linewidth=1, label=name)
    if level is not None:
        axes.axhline(level, color=BASELINE, linestyle=":", linewidth=1, label="baseline level")
    if limit is not None:
        axes.axhline(limit, color=LIMIT, linestyle="--", linewidth=1, label=limit_label)
    missing = [s.at for s in before + after if s.missing]
    if missing:
        axes.vlines(missing, 0, 1, transform=axes.get_xaxis_transform(), color=MISSING, linestyle=":",
                    label="no data")
    axes.set_ylabel(label)
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=6, frameon=False)


def _percent(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def agg_pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend, imported here rather than at the top: only writing a report
    needs it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def svg(figure: "Figure") -> str:
    """A figure as SVG text to inline in a page (from its `<svg` element on), the figure closed."""
    out = io.StringIO()
    figure.savefig(out, format="svg")
    agg_pyplot().close(figure)
    text = out.getvalue()
    return text[text.index("<svg"):]

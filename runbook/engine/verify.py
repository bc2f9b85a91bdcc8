"""A verifying phase: the features tagged for it run in a pytest session of its own, forked by the run's
checking process (`checker`), so its report and results stand alone. Its output is read through the
redactor and shown only with `--verbose` (`runbook.console`); when the checks could not run, its last
lines are the phase's evidence. The session runs under the phase's deadline (`deadlines.checks` or its
own); at the deadline its whole process group is killed and the phase fails naming the deadline."""

from collections import deque
from pathlib import Path

from pydantic import TypeAdapter

from runbook import ROOT, console
from runbook.engine.checker import CHECKER
from runbook.engine.context import RunContext
from runbook.engine.run import PhaseResult, Run, report_name
from runbook.times import utc_now
from runbook.record.model import Scenario
from runbook.secrets import redact

SCENARIOS = TypeAdapter(list[Scenario])
"""The child's results file, read as the record's own model: what crosses the process boundary is typed."""
TAIL = 40
"""The last lines of the child's output kept as evidence when the checks could not run."""


def argv(run: Run, name: str, sequence: str, tag: str, version: str | None) -> list[str]:
    """The pytest arguments of a verifying phase's session: the features tagged `tag` against the run's
    environment, its reports in the run folder."""
    stem = _stem(run, name, sequence)
    return [
        str(ROOT / "features"),
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
        "--only-feature", tag, "-m", tag, "--env", run.env_arg, "--context", str(stem.with_suffix(".context.json")),
        f"--html={stem}.html", "--self-contained-html", f"--junitxml={stem}.xml",
        f"--results={stem.with_suffix('.json')}", f"--cucumber={stem}.cucumber.json",
        "--run-id", run.id, "--operator", run.operator, "--commit", run.commit, "-o", "generate_report_on_test=true",
        "-q", "-rfE", "--tb=line", "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",  # the checking process imported the steps already
        *(["--release-version", version] if version else []),
    ]


def _stem(run: Run, name: str, sequence: str) -> Path:
    return run.folder / Path(report_name(name, sequence)).stem


def phase(run: Run, name: str, title: str, sequence: str, tag: str, version: str | None,
          context: RunContext, then: list[str] | None = None) -> PhaseResult:
    """Run the features tagged `tag` against the run's environment; the report lands in the run folder.
    `then`: the arguments of the next verifying phase's session (`argv`), prepared while this one runs."""
    result = PhaseResult(name, title, sequence, utc_now(), utc_now(), "passed")
    stem = _stem(run, name, sequence)
    results = stem.with_suffix(".json")
    context.write(stem.with_suffix(".context.json"))
    deadline, seconds = run.env.deadlines.for_checks(name)
    shown, tail = console.current(), deque[str](maxlen=TAIL)

    def follow(text: str) -> None:
        for line in text.splitlines():
            tail.append(redact(line))
            shown.output(tail[-1])

    code = CHECKER.run(argv(run, name, sequence, tag, version), seconds, follow, then)
    result.scenarios = [s.model_dump() for s in SCENARIOS.validate_json(results.read_text())] if results.exists() else []
    result.finished = utc_now()
    if code is None:
        result.outcome = "failed"
        result.error = f"the checks did not finish within {seconds} s (deadline {deadline}); they were stopped"
    elif code not in (0, 1) or not result.scenarios:
        result.outcome, result.error = "error", f"the checks could not run (pytest exit code {code})"
        result.evidence = [f"the last {len(tail)} lines their pytest wrote:\n" + "\n".join(tail)] if tail else []
    elif result.blocking:
        result.outcome = "failed"
    return result

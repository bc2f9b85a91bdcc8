"""The pytest plugin that runs the runbook's features against an environment and records every step.

Options: `--env NAME` (default `local`), `--release-version V`, `--results FILE`, `--only-feature NAME`.
Each Gherkin step's status (passed, failed, not run, skipped, attested), duration and evidence go
into the pytest-html report and into the results file the engine turns into `record.json`.
A failed check shows its message (host, check, measured value, threshold), not a traceback.
"""

import html
import json
import time
from dataclasses import asdict
from pathlib import Path

import jinja2
import pytest
from pytest_metadata.plugin import metadata_key

from runbook import config, provenance
from runbook.environments import open_environment
from runbook.engine import state
from runbook.engine.context import RunContext
from runbook.errors import CheckFailed, RunbookError
from runbook.checks import cucumber, outcomes
from runbook.checks.evidence import STEPS, Evidence, Scenario, Step
from runbook.findings import NotConfigured
from runbook.secrets import redact
from runbook.times import seconds, utc_now

RESULTS = pytest.StashKey[list]()
CUCUMBER = pytest.StashKey[list]()
DECLARED = pytest.StashKey[str]()
"""Why the environment declares a scenario not applicable."""
ENVIRONMENT = pytest.StashKey[config.Environment]()
STEP_TABLE = jinja2.Environment(loader=jinja2.PackageLoader("runbook.checks", "templates"),
                                autoescape=True).get_template("steps.html")
"""Each scenario's steps as a table in the HTML report; compiled as the plugin is imported, so that the checking
process compiles it once for all its sessions, not each session for itself."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runbook")
    group.addoption("--env", default="local", help="environment name or file (default: local)")
    group.addoption("--release-version", default=None, help="the version being released")
    group.addoption("--results", default=None, help="write each scenario's steps and evidence as JSON here")
    group.addoption("--cucumber", default=None, help="write Cucumber JSON here, each step with its real status")
    group.addoption("--run-id", default=None, help="the run this phase belongs to")
    group.addoption("--context", default=None, help="JSON file: what the deploy or rollback being verified knows")
    group.addoption("--operator", default=None, help="who runs it (default: $RUNBOOK_OPERATOR or the login name)")
    group.addoption("--commit", default=None, help="the runbook's commit the run names (default: asked of git)")
    group.addoption("--only-feature", default=None,
                    help="collect only features/NAME.feature (a verifying phase's own; default: every feature)")


FEATURES = ["."]
"""What the features' test module binds (`features/test_runbook.py`): `--only-feature`'s file, else the whole folder.
Set as pytest configures, before it collects: a phase's session parses only its own feature file."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS], config.stash[CUCUMBER] = [], []
    feature = config.getoption("only_feature")
    FEATURES[:] = [f"{feature}.feature"] if feature else ["."]
    metadata = config.stash.get(metadata_key, None)
    if metadata is not None:
        metadata.clear()
        metadata["Run"] = config.getoption("run_id") or "(direct pytest run)"
        metadata["Environment"] = config.getoption("env")
        metadata["Version"] = config.getoption("release_version") or "(none requested)"
        metadata["Operator"] = config.getoption("operator") or provenance.operator()
        metadata["Runbook commit"] = config.getoption("commit") or provenance.git_commit()
        metadata["Started (UTC)"] = f"{utc_now():%Y-%m-%d %H:%M:%S}"


@pytest.fixture(scope="session")
def environment(pytestconfig: pytest.Config, run_context: RunContext | None) -> config.Environment:
    """The validated environment; a local one must be up (the run verified has seen it up: it is not
    checked again). Bad config stops the run (exit 2)."""
    try:
        env = open_environment(pytestconfig.getoption("env"), start_local=False,
                               seen_up=run_context is not None and run_context.local_up)
    except RunbookError as e:
        pytest.exit(str(e), returncode=e.exit_code)
    pytestconfig.stash[ENVIRONMENT] = env
    return env


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    return Evidence(request.node)


@pytest.fixture(scope="session")
def run_context(pytestconfig: pytest.Config) -> RunContext | None:
    """What the run being verified knows (`--context`); None in a direct pytest run."""
    path = pytestconfig.getoption("context")
    return RunContext.read(Path(path)) if path else None


@pytest.fixture(scope="session")
def deployment(run_context: RunContext | None, environment: config.Environment) -> RunContext:
    """What the run being verified knows (release, target, expected schema, data snapshot).

    Without `--context` (a direct pytest run) it is read from the environment: its live release.
    """
    if run_context is not None:
        return run_context
    live = state.load(environment).live
    return RunContext(from_run=False, release=live and live.release, version=live and live.version,
                      target=live and live.release, target_schema=live and live.schema_version)


@pytest.fixture(scope="session")
def operator(pytestconfig: pytest.Config) -> str:
    """Who runs these checks: `--operator`, else `$RUNBOOK_OPERATOR` or the login name."""
    return pytestconfig.getoption("operator") or provenance.operator()


@pytest.fixture
def release_version(pytestconfig: pytest.Config) -> str:
    """The requested version; a scenario that needs one is skipped when none was given."""
    version = pytestconfig.getoption("release_version")
    if not version:
        pytest.skip("no version requested (give --release-version / --version)")
    return version


def pytest_bdd_before_scenario(request, feature, scenario) -> None:
    request.node.stash[STEPS] = Scenario(
        feature=feature.name,
        name=scenario.name,
        tags=sorted(scenario.tags | feature.tags),
        steps=[Step(s.keyword, s.name, line=s.line_number) for s in scenario.steps],
        uri=f"features/{feature.rel_filename}",
        line=scenario.line_number,
    )
    declared = outcomes.not_applicable(request.getfixturevalue("environment"), scenario.name,
                                       scenario.tags | feature.tags)
    if declared is not None:
        request.node.stash[DECLARED] = declared
        pytest.skip(f"not applicable: {declared}")


def _next_step(request) -> Step:
    """The first step not run yet becomes the current one (pytest-bdd runs them in order)."""
    record = request.node.stash[STEPS]
    record.current = next(s for s in record.steps if s.status == "not run")
    return record.current


def pytest_bdd_before_step(request, feature, scenario, step, step_func) -> None:
    record = _next_step(request)
    record.status, record.started = "running", time.monotonic()


def pytest_bdd_after_step(request, feature, scenario, step, step_func, step_func_args) -> None:
    record = request.node.stash[STEPS].current
    record.duration = time.monotonic() - record.started
    if record.status == "running":
        record.status = "passed"


def pytest_bdd_step_error(request, feature, scenario, step, step_func, step_func_args, exception) -> None:
    record = request.node.stash[STEPS].current
    record.duration = time.monotonic() - record.started
    record.status = "skipped" if isinstance(exception, NotConfigured) else "failed"
    record.message = redact(_message(exception))


def pytest_bdd_step_func_lookup_error(request, feature, scenario, step, exception) -> None:
    record = _next_step(request)
    record.status, record.message = "failed", f"no step definition: {step.keyword} {step.name}"


def _message(exception: BaseException) -> str:
    if isinstance(exception, (CheckFailed, NotConfigured)):
        return str(exception)
    return f"{type(exception).__name__}: {exception}"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    record: Scenario | None = item.stash.get(STEPS, None)
    location = (str(item.path), item.location[1] or 0)
    report.sections = [(title, redact(text)) for title, text in report.sections]
    if report.failed and call.excinfo is not None and call.excinfo.errisinstance(NotConfigured):
        report.outcome = "skipped"
        report.longrepr = (*location, f"Skipped: {redact(str(call.excinfo.value))}")
    if report.failed and call.excinfo is not None:
        if call.excinfo.errisinstance(CheckFailed):
            report.longrepr = redact(str(call.excinfo.value))
        elif report.longrepr is not None:
            report.longrepr = redact(str(report.longrepr))
    if record is None or report.when != "call":
        return
    for step in record.steps:
        if step.status == "running":
            step.duration = time.monotonic() - step.started
            step.status = "skipped" if report.skipped else "failed"
            step.message = redact(_skip_reason(report)) if report.skipped else step.message
    env = item.config.stash.get(ENVIRONMENT, None)
    verdict = outcomes.judge(env, record.name, record.tags, report.outcome, _outcome_message(report, record),
                             "attested" in {s.status for s in record.steps}, item.stash.get(DECLARED, None))
    outcomes.carry(report, location, verdict)
    report.extras = [*getattr(report, "extras", []), _html_extra(record)]
    report.scenario_title = f"{record.name} ({' '.join('@' + t for t in record.tags)})"
    item.config.stash[RESULTS].append(_result(item, report, record, verdict))
    item.config.stash[CUCUMBER].append((record, cucumber.element(record, verdict.outcome, verdict.message)))


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)


def _outcome_message(report: pytest.TestReport, record: Scenario) -> str:
    """Why a scenario did not pass, in one line: the failed step's message or the skip reason."""
    if report.skipped:
        return redact(_skip_reason(report))
    if report.failed:
        failed = [s.message for s in record.steps if s.status == "failed" and s.message]
        return failed[0] if failed else redact(str(report.longrepr).strip().splitlines()[-1])
    return ""


def _result(item: pytest.Item, report: pytest.TestReport, record: Scenario, verdict: outcomes.Verdict) -> dict:
    return {
        "nodeid": item.nodeid,
        "feature": record.feature,
        "scenario": record.name,
        "tags": record.tags,
        "outcome": verdict.outcome,
        "duration": seconds(report.duration),
        "message": redact(verdict.message),
        "steps": [
            {k: v for k, v in asdict(s).items() if k not in ("started", "line")} | {"duration": seconds(s.duration)}
            for s in record.steps
        ],
    }


def _html_extra(record: Scenario) -> dict:
    from pytest_html import extras

    return extras.html(STEP_TABLE.render(record=record))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    metadata = config.stash.get(metadata_key, None)
    if metadata is not None:
        metadata["Finished (UTC)"] = f"{utc_now():%Y-%m-%d %H:%M:%S}"
    results = config.getoption("results")
    if results:
        Path(results).write_text(json.dumps(config.stash[RESULTS], indent=2))
    if config.getoption("cucumber"):
        cucumber.write(Path(config.getoption("cucumber")), config.stash[CUCUMBER])


def pytest_html_results_table_row(report, cells: list[str]) -> None:
    """Name each row by its scenario, as the runbook says it, rather than by its test function."""
    title = getattr(report, "scenario_title", None)
    if title:
        cells[1] = f'<td class="col-testId">{html.escape(title)}</td>'


def pytest_html_report_title(report) -> None:
    options = report.config.option
    report.title = f"Runbook: {options.markexpr or 'all phases'} on {options.env}"

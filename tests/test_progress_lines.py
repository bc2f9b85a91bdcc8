"""What the terminal shows while a run goes (issue 17, item 6): through a pipe, one line per phase with its
verdict and time and none of the checks' own pytest output (unless --verbose); with --json, only JSON
lines; on a terminal, a live line with the running phase, its seconds and its counter. Times are never
asserted, only their format."""

import io
import json
import re
import threading

from rich.console import Console

from runbook import config, console
from runbook.database import commands
from runbook.hosts import runner
from runbook.watch import bake, metrics

from .test_metrics import TEXT_SOURCE, load, serve
from .test_watch import FakeClock, traffic

PHASE_LINE = re.compile(r"^\[gate\] preflight: \w+ \(.*\) in \d+\.\d s$")
PYTEST_PROGRESS = re.compile(r"^[.sxXfFE]+\s*(\[\s*\d+%\])?$")


def _pytest_output(output: str) -> list[str]:
    """The lines of `output` only the checks' own pytest writes: its progress dots, its report line."""
    return [line for line in output.splitlines()
            if PYTEST_PROGRESS.match(line.strip()) or "generated html report" in line.lower()]


def test_a_piped_gate_shows_one_line_per_phase_with_its_time_and_none_of_the_checks_own_output(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env()))
    assert result.code == 0, result.output
    phases = [line for line in result.output.splitlines() if line.startswith("[gate] ")]
    assert len(phases) == 1 and PHASE_LINE.match(phases[0]), result.output
    assert not _pytest_output(result.output), result.output
    assert "record: " in result.output


def test_verbose_shows_the_checks_own_pytest_output_as_well(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env()), "--verbose")
    assert result.code == 0, result.output
    assert _pytest_output(result.output), result.output
    assert any(PHASE_LINE.match(line) for line in result.output.splitlines()), result.output


def test_json_prints_only_json_lines_with_each_phase_started_and_finished_and_no_secret(make_env, invoke, secret):
    result = invoke("preflight", "--env", str(make_env()), "--json")
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run started" and "run finished" in names, names
    (started,) = [e for e in events if e["event"] == "phase started"]
    (finished,) = [e for e in events if e["event"] == "phase finished"]
    assert (started["sequence"], started["phase"]) == ("gate", "preflight") and started["title"]
    assert finished["outcome"] == "passed" and finished["error"] == "" and isinstance(finished["seconds"], float)
    assert any(e["event"] == "message" and e["text"].startswith("record: ") for e in events)
    assert all(isinstance(e["at"], str) for e in events)
    assert secret not in result.output


def test_checks_that_cannot_run_show_the_last_lines_their_pytest_wrote(make_env, invoke):
    result = invoke("preflight", "--env", str(make_env()), extra_env={"PYTEST_ADDOPTS": "--no-such-option"})
    assert result.code == 1, result.output
    assert "unrecognized arguments: --no-such-option" in result.output, result.output
    assert re.search(r"^\[gate\] preflight: error \(the checks could not run \(pytest exit code 4\)\) in \d+\.\d s$",
                     result.output, re.MULTILINE), result.output
    (phase,) = result.record["phases"]
    assert "unrecognized arguments: --no-such-option" in "\n".join(phase["evidence"])


def test_on_a_terminal_the_live_line_shows_the_running_phase_its_seconds_and_its_counter():
    screen = io.StringIO()
    shown = console.Rich(console=Console(force_terminal=True, file=screen, width=120))
    shown.phase_started("deploy", "stop-2", "Stop the services (batch 2 of 3: web2, web3)")
    shown.count("1,024 bytes written")
    live = io.StringIO()
    Console(force_terminal=True, file=live, width=120).print(shown.running)
    assert re.search(r"\[deploy\] Stop the services \(batch 2 of 3: web2, web3\)  \d+ s  1,024 bytes written",
                     live.getvalue()), live.getvalue()
    shown.phase_finished("[deploy] stop-2: passed (done)", "passed", 0.25)
    assert "Stop the services (batch 2 of 3" in screen.getvalue()  # the live line was drawn
    assert re.search(r"\[deploy\] stop-2: passed \(done\) in \d+\.\d s", screen.getvalue()), screen.getvalue()
    assert shown.running is None


def test_a_counter_is_measured_in_a_thread_that_stops_when_its_phase_ends():
    out = io.StringIO()
    shown = console.Json(out=out)
    shown.phase_started("backup", "backup", "Back up the current database")
    measured, twice = [], threading.Event()

    def measure() -> str:
        measured.append(len(measured))
        if len(measured) >= 2:
            twice.set()
        return f"{len(measured)} measured"

    with shown.counting(measure, every=0):
        assert twice.wait(10), "the counter was never measured twice"
    assert not [t for t in threading.enumerate() if t.name == "runbook-counter"]
    after = len(measured)
    threading.Event().wait(3 * console.MIN_EVERY)
    assert len(measured) == after
    counters = [json.loads(line) for line in out.getvalue().splitlines()]
    assert counters and all(c["event"] == "counter" and c["phase"] == "backup" for c in counters)


def test_plain_lines_measure_no_counter():
    shown = console.Plain(out=io.StringIO())
    shown.phase_started("backup", "backup", "Back up the current database")
    measured: list[str] = []
    with shown.counting(lambda: measured.append("measured") or "measured", every=0):
        assert not [t for t in threading.enumerate() if t.name == "runbook-counter"]
        threading.Event().wait(3 * console.MIN_EVERY)
    assert measured == []


def test_the_backup_counter_measures_the_bytes_a_dump_has_written_so_far(tmp_path):
    (tmp_path / "x.dump").write_bytes(b"0123456789")
    found = runner.run(config.Host(name="localhost", spec="local://"), commands.size(str(tmp_path / "x.dump")))
    assert found.rc == 0 and found.stdout.split()[0] == "10"


def test_a_bake_tells_how_many_samples_are_left_before_each_tick(make_env):
    settings = {"source": TEXT_SOURCE, "interval_seconds": 10, "baseline_seconds": 20, "bake_seconds": 40,
                "error_window_seconds": 20, "latency_window_seconds": 20}
    with serve(traffic(*["ok"] * 12)) as app:
        env = load(make_env, settings | {"source": TEXT_SOURCE | {"url": f"{app.url}/metrics"}})
        clock = FakeClock()
        source = metrics.source(env, clock)
        baseline_left, bake_left = [], []
        before = bake.baseline(env, source, clock=clock, left=baseline_left.append)
        bake.bake(env, source, before, clock=clock, left=bake_left.append)
    assert (baseline_left, bake_left) == ([2, 1], [4, 3, 2, 1])

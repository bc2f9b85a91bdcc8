"""The run context is one typed model on both sides of the process boundary: what the engine writes is
what the plugin reads, and every field the steps read exists on it."""

import ast
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from runbook import ROOT
from runbook.engine.context import BaselineFigures, RunContext
from runbook.engine.deployment import Deployment
from runbook.engine.run import Run


def _deployment(tmp_path: Path) -> Deployment:
    run = Run(env=None, env_arg="test", kind="deploy", version="1.1.0", id="r", folder=tmp_path,
              started=datetime(2026, 12, 1, tzinfo=timezone.utc))
    return Deployment(run, release="20261201T000000Z-1.1.0", target="20261101T000000Z-1.0.0", target_schema="0001",
                      snapshot={"items": {"rows": 3, "digest": "abc"}})


def test_what_the_engine_writes_is_what_the_plugin_reads(tmp_path):
    written = _deployment(tmp_path).context()
    read = RunContext.read(written.write(tmp_path / "context.json"))
    assert read == written and read.from_run and not read.first_deploy
    assert read.snapshot == {"items": {"rows": 3, "digest": "abc"}}


def test_a_context_with_an_unknown_field_is_refused(tmp_path):
    (tmp_path / "context.json").write_text('{"release": "r", "relase_version": "1.1.0"}')
    with pytest.raises(ValidationError, match="relase_version"):
        RunContext.read(tmp_path / "context.json")


def test_every_field_the_steps_and_checks_read_exists_on_the_context():
    fields = set(RunContext.model_fields) | {"first_deploy"}
    read = set()
    readers = [*(ROOT / "steps").glob("*.py"),
               *(p for p in (ROOT / "runbook" / "checks").glob("*.py") if "RunContext" in p.read_text())]
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in ("deployment", "context", "run_context")):
                read.add(node.attr)
    assert read, "no step reads the run context"
    assert read <= fields | {"write", "read"}, read - fields


def test_baseline_figures_are_typed():
    with pytest.raises(ValidationError):
        BaselineFigures(p95_seconds="fast", error_rate=0.0)


def test_the_phases_of_a_run_that_saw_its_local_stack_up_are_told_so(tmp_path):
    d = _deployment(tmp_path)
    assert not d.context().local_up
    d.run.local_up = True
    assert RunContext.read(d.context().write(tmp_path / "context.json")).local_up

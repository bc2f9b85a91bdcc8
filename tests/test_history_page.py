"""`reports/index.html`: a deploy chart is drawn when the deploys it shows change, and only then."""

import json

import pytest

from runbook.record import history


def _record(reports, run_id: str, kind: str, version: str, outcome: str = "passed") -> None:
    folder = reports / run_id
    folder.mkdir()
    (folder / "record.json").write_text(json.dumps({
        "run_id": run_id, "environment": "prod", "kind": kind, "version": version, "outcome": outcome,
        "operator": "ops", "started": f"2026-12-01T{run_id[-2:]}:00:00Z", "duration_seconds": 30 + len(run_id),
        "phases": []}))


def test_a_run_that_adds_no_deploy_reuses_the_chart_and_a_new_deploy_redraws_it(tmp_path, monkeypatch):
    _record(tmp_path, "r01", "deploy", "1.0.0")
    history.write(tmp_path)
    first = list((tmp_path / ".charts").glob("*.svg"))
    assert len(first) == 1 and first[0].read_text() in (tmp_path / "index.html").read_text()

    def not_drawn(deploys):
        raise AssertionError("the chart was drawn again")

    with monkeypatch.context() as patched:
        patched.setattr(history, "chart", not_drawn)
        _record(tmp_path, "r02", "preflight", "1.1.0")
        history.write(tmp_path)
        assert "r02" in (tmp_path / "index.html").read_text()
        _record(tmp_path, "r03", "deploy", "1.1.0", "failed")
        with pytest.raises(AssertionError, match="drawn again"):
            history.write(tmp_path)
    history.write(tmp_path)
    now = list((tmp_path / ".charts").glob("*.svg"))
    assert len(now) == 1 and now != first and "1.1.0" in now[0].read_text()
    assert now[0].read_text() in (tmp_path / "index.html").read_text()

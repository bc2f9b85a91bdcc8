"""`reports/index.html`: a deploy chart is drawn when the deploys it shows change, and only then; each run's line
is read again only when its record changed (`reports/.history.json`), which is derived data."""

import json
import os
import shutil

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


def _shown(reports) -> str:
    history.write(reports)
    return (reports / "index.html").read_text()


def test_the_history_reads_a_record_again_only_when_it_changed(tmp_path):
    for run_id in ("r01", "r02", "r03"):
        _record(tmp_path, run_id, "deploy", "1.0.0")
    assert 'href="r02/index.html"' in _shown(tmp_path)
    kept = tmp_path / "r02" / "record.json"
    stat = kept.stat()
    kept.write_text("x" * stat.st_size)  # same size and time: a history that read it again would drop r02
    os.utime(kept, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _record(tmp_path, "r04", "preflight", "1.1.0")
    page = _shown(tmp_path)
    assert 'href="r02/index.html"' in page and 'href="r04/index.html"' in page
    record = json.loads((tmp_path / "r01" / "record.json").read_text())
    (tmp_path / "r01" / "record.json").write_text(json.dumps({**record, "outcome": "failed", "operator": "someone-else"}))
    page = _shown(tmp_path)
    assert "someone-else" in page and "Change failure rate" in page
    shutil.rmtree(tmp_path / "r03")
    assert 'href="r03/index.html"' not in _shown(tmp_path)


def test_an_unreadable_history_file_is_rebuilt_from_the_records(tmp_path):
    for run_id in ("r01", "r02"):
        _record(tmp_path, run_id, "deploy", "1.0.0")
    _shown(tmp_path)
    (tmp_path / ".history.json").write_text('{"runs": {"r01": "not a summary"}}')
    page = _shown(tmp_path)
    assert 'href="r01/index.html"' in page and 'href="r02/index.html"' in page
    assert json.loads((tmp_path / ".history.json").read_text())["runs"]["r01"]["summary"]["run_id"] == "r01"


def test_a_history_file_that_cannot_be_written_leaves_the_page_whole(tmp_path):
    _record(tmp_path, "r01", "deploy", "1.0.0")
    (tmp_path / ".history.json").mkdir()  # a directory: replacing it with the new file fails
    assert 'href="r01/index.html"' in _shown(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".history")] == [".history.json"]


def test_the_chart_shows_the_last_deploys_only(tmp_path):
    for n in range(history.CHARTED + 10):
        _record(tmp_path, f"r{n:02d}", "deploy", f"v{n:02d}")
    page = _shown(tmp_path)
    (chart,) = (tmp_path / ".charts").glob("*.svg")
    assert f"v{history.CHARTED + 9:02d}" in chart.read_text() and "v09" not in chart.read_text()
    assert chart.read_text() in page and f"<td>{history.CHARTED + 10}</td>" in page  # the metrics count every deploy


def test_a_chart_of_many_deploys_names_every_kth_bar_and_always_the_newest(tmp_path):
    for n in range(history.CHARTED):
        _record(tmp_path, f"r{n:02d}", "deploy", f"v{n:02d}")
    _shown(tmp_path)
    (chart,) = (tmp_path / ".charts").glob("*.svg")
    named = [n for n in range(history.CHARTED) if f"v{n:02d}" in chart.read_text()]
    assert named[-1] == history.CHARTED - 1
    assert 2 <= len(named) <= history.LABELLED
    assert len({b - a for a, b in zip(named, named[1:])}) == 1, f"unevenly spaced labels: {named}"


def test_a_chart_of_few_deploys_names_every_bar(tmp_path):
    for n in range(history.LABELLED):
        _record(tmp_path, f"r{n:02d}", "deploy", f"v{n:02d}")
    _shown(tmp_path)
    (chart,) = (tmp_path / ".charts").glob("*.svg")
    assert all(f"v{n:02d}" in chart.read_text() for n in range(history.LABELLED))

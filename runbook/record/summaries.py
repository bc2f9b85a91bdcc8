"""What the history shows of each run (`RunSummary`), read from its `record.json`, or from its journal for a
run killed before it wrote one, and kept in `reports/.history.json` by the source file's size and modification
time: rewriting `reports/index.html` after a run reads only the records that are new or changed since, where
it read every record of every run (a deploy's `record.json` is about 140 KB: 0.48 s each time at 500 runs).

The file is derived data: one that cannot be read is rebuilt from the records, and two runs writing it at once
each replace it whole (the one that lost a line reads that record again next time)."""

import contextlib
import json
import os
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from runbook import processes
from runbook.engine.journal import Journal
from runbook.times import between, parse, parse_ms, stamp

KEPT = ".history.json"


def _seconds(start: str, end: str) -> float:
    return between(parse(start), parse(end))


class RunSummary(BaseModel):
    """A run as the history lists it and computes the success metrics from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: str
    kind: str | None = None
    environment: str
    version: str | None = None
    operator: str = ""
    started: str
    finished: str | None = None
    duration_seconds: float
    outcome: str
    emergency: bool = False
    """It ran under an emergency approval."""
    rolled_back: bool = False
    """It ran a rollback of its own."""
    restore_seconds: float | None = None
    """From the phase whose failure triggered its rollback to the end of that rollback, when it passed."""
    recovered: str | None = None
    """The killed run this run recovered (`crashed_run`)."""
    killed_in: str | None = None
    """Killed before it wrote its record: the phase it was in."""
    recovered_by: str | None = None
    """For a killed run: the run that recovered it, ended at `restored`."""
    restored: str | None = None

    @property
    def time_to_restore(self) -> float | None:
        """For a killed run, from its last event to the end of its recovery."""
        if self.killed_in is None:
            return self.restore_seconds
        return _seconds(self.finished, self.restored) if self.finished and self.restored else None


def restore_seconds(record: dict) -> float | None:
    """From the phase whose failure triggered the rollback to the end of the rollback."""
    phases = record.get("phases") or []
    rollback = [p for p in phases if p["sequence"] == "rollback"]
    failed = [p for p in phases if p["sequence"] == "deploy" and p["outcome"] in ("failed", "error")]
    if not rollback or not failed or rollback[-1]["outcome"] != "passed":
        return None
    return _seconds(failed[0]["finished"], rollback[-1]["finished"])


def of_record(record: dict) -> RunSummary:
    fields = set(RunSummary.model_fields) - {"emergency", "rolled_back", "restore_seconds", "recovered"}
    return RunSummary(**{k: record[k] for k in fields if record.get(k) is not None},
                      emergency=bool((record.get("approval") or {}).get("emergency")),
                      rolled_back=record.get("rollback") is not None, restore_seconds=restore_seconds(record),
                      recovered=(record.get("crashed_run") or {}).get("run_id"))


def _alive(runner: str | None, pid: int | None) -> bool:
    """Whether the run's process still runs here (its record is then still to come)."""
    return runner == socket.gethostname() and bool(pid) and processes.alive(pid)


def of_journal(folder: Path) -> RunSummary | None:
    """A run killed before it wrote its record, read back from its journal, so the history counts it (a killed
    deploy is a failed change); None when the folder holds no journal, or its run still runs."""
    events = Journal(folder).events()
    if not events or events[0].get("event") != "run started":
        return None
    first, last = events[0], events[-1]
    if _alive(first.get("runner"), first.get("pid")):
        return None
    phases = [e["phase"] for e in events if e.get("event") == "phase started"]
    started, ended = parse_ms(first["at"]), parse_ms(last["at"])
    return RunSummary(
        run_id=folder.name, kind=first.get("kind"), version=first.get("version"),
        environment=first.get("environment") or "-".join(folder.name.split("-")[1:-2]),
        operator=first.get("operator", ""), started=stamp(started), finished=stamp(ended),
        duration_seconds=between(started, ended), outcome="killed",
        killed_in=phases[-1] if phases else "before its first phase")


class Kept(BaseModel):
    """A summary and the (name, modification time, size) of the file it was read from."""

    model_config = ConfigDict(extra="forbid")
    source: tuple[str, int, int]
    summary: RunSummary


class History(BaseModel):
    """`reports/.history.json`: each run folder's summary."""

    model_config = ConfigDict(extra="forbid")
    runs: dict[str, Kept] = {}


def _load(path: Path) -> History:
    with contextlib.suppress(OSError, ValidationError):
        return History.model_validate_json(path.read_bytes())
    return History()


def _save(path: Path, history: History) -> None:
    """Replace the file whole; when it cannot be written (a full disk) it stays as it was, to be caught up next time."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        temporary.write_text(history.model_dump_json(exclude_defaults=True))
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)


def _source(folder: Path) -> tuple[Path, tuple[str, int, int]] | None:
    """The run's record, or its journal when it has none, with that file's (name, modification time, size)."""
    for name in ("record.json", "journal.jsonl"):
        with contextlib.suppress(OSError):
            found = os.stat(folder / name)
            return folder / name, (name, found.st_mtime_ns, found.st_size)
    return None


def _read(source: Path) -> RunSummary | None:
    if source.name == "journal.jsonl":
        return of_journal(source.parent)
    try:
        return of_record(json.loads(source.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _linked(summaries: list[RunSummary]) -> list[RunSummary]:
    """Each killed run with the run that recovered it, and when that ended."""
    recoveries = {s.recovered: s for s in summaries if s.recovered}
    return [s.model_copy(update={"recovered_by": recoveries[s.run_id].run_id, "restored": recoveries[s.run_id].finished})
            if s.killed_in is not None and s.run_id in recoveries else s for s in summaries]


def runs(reports: Path) -> list[RunSummary]:
    """Every run under `reports/`, newest first: each readable record, and each run killed before it wrote one
    (a run that still runs, or a record that cannot be read, is left out and read again next time)."""
    before, now = _load(reports / KEPT), History()
    for entry in os.scandir(reports):
        found = _source(Path(entry.path)) if entry.is_dir() and not entry.name.startswith(".") else None
        if found is None:
            continue
        source, seen = found
        kept = before.runs.get(entry.name)
        summary = kept.summary if kept is not None and kept.source == seen else _read(source)
        if summary is not None:
            now.runs[entry.name] = Kept(source=seen, summary=summary)
    if now != before:
        _save(reports / KEPT, now)
    return sorted(_linked([k.summary for k in now.runs.values()]), key=lambda s: s.run_id, reverse=True)

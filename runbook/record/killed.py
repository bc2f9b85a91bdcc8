"""A run folder without `record.json`: a run killed before it could write one, read back from its
journal, so the history counts it (a killed deploy is a failed change) and names the recovery."""

import os
import socket
from pathlib import Path

from runbook.engine.journal import Journal
from runbook.times import between, parse_ms, stamp


def _alive(runner: str | None, pid: int | None) -> bool:
    """Whether the run's process still runs here (its record is then still to come)."""
    if runner != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def summary(folder: Path, records: list[dict]) -> dict | None:
    """The killed run as the history lists it, with the run that recovered it; None when the folder holds
    no journal, or its run still runs."""
    events = Journal(folder).events()
    if not events or events[0].get("event") != "run started":
        return None
    first, last = events[0], events[-1]
    if _alive(first.get("runner"), first.get("pid")):
        return None
    phases = [e["phase"] for e in events if e.get("event") == "phase started"]
    started, ended = parse_ms(first["at"]), parse_ms(last["at"])
    found = {
        "run_id": folder.name, "kind": first.get("kind"), "version": first.get("version"),
        "environment": first.get("environment") or "-".join(folder.name.split("-")[1:-2]), "operator": first.get("operator", ""),
        "started": stamp(started), "finished": stamp(ended), "duration_seconds": between(started, ended),
        "outcome": "killed", "killed_in": phases[-1] if phases else "before its first phase",
    }
    recovery = [r for r in records if (r.get("crashed_run") or {}).get("run_id") == folder.name]
    if recovery:
        found["recovered_by"], found["restored"] = recovery[0]["run_id"], recovery[0]["finished"]
    return found

"""What the recovery tests share: an app on 1.0.0 with customer rows, runs killed for real (SIGKILL to
the whole session) at a phase, and the checks that the environment is back where it was."""

import contextlib
import json
import os
from pathlib import Path

from . import apps, cli, packages

NOTES = "-- migrate:up\nALTER TABLE items ADD COLUMN notes text;\n-- migrate:down\nALTER TABLE items DROP COLUMN notes;\n"
"""1.1.0's migration: the schema goes from 0002 to 0003."""


@contextlib.contextmanager
def on_1_0_0(folder: Path):
    """The demo app on 1.0.0 with customer rows, and packages of a healthy 1.1.0 (schema 0003) and a
    1.2.0 whose health check fails after the same migration."""
    with apps.deployable(folder) as app:
        packages.build(folder, "1.0.0")
        packages.build(folder, "1.1.0", {"0003_notes.sql": NOTES})
        packages.build(folder, "1.2.0", {"0003_notes.sql": NOTES}, edit=packages.broken_health)
        first = cli.invoke(folder / "reports-first", "deploy", "--env", str(app.env_file), "--version", "1.0.0")
        assert first.code == 0, first.output
        app.write_items(3)
        yield app


def kill_at(app: apps.App, reports: Path, phase: str, *task: str, kind: str = "deploy", sequence: str = "deploy",
            version: str | None = None) -> None:
    """Start `task`, SIGKILL its whole session as soon as its journal says `phase` of `sequence` started."""
    running = cli.start_task(reports, *task)
    cli.wait_for_phase(reports, running, version, phase, kind=kind, sequence=sequence)
    cli.kill_session(running)


def lock_file(app: apps.App) -> Path:
    return app.folder / "app" / "runbook.lock"


def snapshot(app: apps.App) -> dict:
    """What a read-only command must leave alone: the lock, the state, the links, the release folders."""
    root = app.folder / "app"
    files = {p: p.read_bytes() for p in (root / "runbook.lock", root / "runbook-state.json") if p.exists()}
    return {"files": files, "current": os.readlink(root / "current") if (root / "current").is_symlink() else None,
            "releases": sorted(p.name for p in (root / "releases").iterdir())}


def last_record(reports: Path, kind: str) -> dict:
    """The record of the newest `kind` run in `reports`."""
    newest = sorted(reports.glob(f"*-{kind}-*"))[-1]
    return json.loads((newest / "record.json").read_text())


def rows_kept(app: apps.App, before: list[tuple]) -> bool:
    """Every customer row there before is there now, unchanged (the smoke tests of a verified release
    add rows of their own, with higher ids)."""
    return app.rows()[:len(before)] == before

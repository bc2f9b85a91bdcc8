"""The run's journal: its events, one JSON line each, flushed to disk as they happen, so a crash
leaves them behind."""

import json
import os
from pathlib import Path

from runbook.secrets import redact


class Journal:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "journal.jsonl"

    def write(self, event: dict) -> None:
        with self.path.open("a") as out:
            out.write(redact(json.dumps(event)) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def events(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

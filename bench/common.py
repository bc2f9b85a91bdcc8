"""What the benchmark scripts share: running invoke tasks, building demo packages, polling the app."""

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from runbook import config

ROOT = Path(__file__).resolve().parent.parent


def environment(description: str):
    """The environment named by `--env` (default: local), with its name as given."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default="local")
    name = parser.parse_args().env
    return name, config.load_environment(name)


def invoke(*args: str) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-2000:])
    return result.returncode, time.monotonic() - started


class Poller(threading.Thread):
    """Asks a URL every `interval` seconds until stopped; records each answer's time (`time.time()`),
    whether it was a 200, and the `version` its JSON names, if any."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.samples, self.stop = url, interval, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            moment, ok, version = time.time(), False, None
            try:
                answer = requests.get(self.url, timeout=1)
                ok = answer.status_code == 200
                version = answer.json().get("version") if ok else None
            except (requests.RequestException, ValueError):
                pass
            self.samples.append((moment, ok, version))
            self.stop.wait(self.interval)

    def longest_gap(self) -> float:
        """The longest time between two successful answers (or from the first sample to one)."""
        last_ok, gap = self.samples[0][0], 0.0
        for moment, ok, _ in self.samples:
            if ok:
                gap, last_ok = max(gap, moment - last_ok), moment
        return max(gap, self.samples[-1][0] - last_ok)


def build(version: str, migrations: dict[str, str] | None = None, edit=None) -> None:
    """A package of the demo, optionally with extra migrations and app.py edited, in dist/."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "demo"
        shutil.copytree(ROOT / "demo", source)
        for name, text in (migrations or {}).items():
            (source / "migrations" / name).write_text(text)
        if edit:
            (source / "app.py").write_text(edit((source / "app.py").read_text()))
        code, _ = invoke("package", "--version", version, "--source", str(source))
        assert code == 0, f"building {version} failed"

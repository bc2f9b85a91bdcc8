"""What the benchmark scripts share: running invoke tasks, building demo packages."""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

from runbook import config

ROOT = Path(__file__).resolve().parent.parent


def environment(description: str):
    """The environment named by `--env` (default: local), with its name as given."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--env", default="local")
    name = parser.parse_args().env
    return name, config.load_environment(name)


def variant(env_name: str, label: str, changes: dict) -> str:
    """A copy of the environment file with top-level `changes` (None removes a key), under .local/; its path."""
    data = yaml.safe_load(config.environment_path(env_name).read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = ROOT / ".local" / f"bench-{Path(env_name).stem}-{label}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def invoke(*args: str) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-2000:])
    return result.returncode, time.monotonic() - started


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


def epoch(utc_text: str) -> float:
    """Seconds since the epoch of a record's or journal's UTC time, e.g. 2026-11-28T09:30:00.250Z."""
    return datetime.fromisoformat(utc_text).timestamp()

"""What the benchmark scripts share: compiling the tree as installed, running invoke tasks, building demo
packages."""

import argparse
import compileall
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import yaml

from runbook import config

ROOT = Path(__file__).resolve().parent.parent


def as_installed(tree: Path = ROOT) -> None:
    """Compile the code under `tree` to bytecode, as installing a package does: with PYTHONDONTWRITEBYTECODE
    set (as on some machines) an editable checkout would otherwise be compiled from source in every
    process, which times Python's compiler, not the tool."""
    for folder in ("runbook", "steps"):
        compileall.compile_dir(tree / folder, quiet=1)
    for module in ("tasks.py", "conftest.py"):
        compileall.compile_file(tree / module, quiet=1)


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


def must(argv: list[str], cwd: Path = ROOT, timeout: float = 900, env: dict | None = None) -> float:
    """Run `argv`; its wall time in seconds, or exit naming it with the end of its output when it fails."""
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return took


def marked(marker: str) -> Iterator[str]:
    """The /proc status text of each process whose environment carries `marker` (`NAME=value`): the
    processes of one benchmarked run, which passes the marker down to everything it starts."""
    wanted = marker.encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if wanted in Path(f"/proc/{pid}/environ").read_bytes():
                yield Path(f"/proc/{pid}/status").read_text()
        except OSError:  # it ended meanwhile
            continue


def rss_kb(status: str) -> int:
    """The resident set of a process, from its /proc status text."""
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(found[1]) if found else 0


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


def blob_package(folder: Path, app: str, version: str, size: int, dest: Path) -> Path:
    """The demo with `size` incompressible bytes in data/blob.bin, built as package `version` into `dest`
    (the demo's copy under `folder` removed after)."""
    from runbook.release import package

    source = folder / f"demo-{version}"
    shutil.copytree(ROOT / "demo", source, ignore=shutil.ignore_patterns("__pycache__", ".env", "uploads"))
    (source / "data").mkdir(exist_ok=True)
    with (source / "data" / "blob.bin").open("wb") as out:
        for _ in range(size // package.CHUNK):
            out.write(os.urandom(package.CHUNK))
    built = package.build(source, app, version, dest)
    shutil.rmtree(source)
    return built


def epoch(utc_text: str) -> float:
    """Seconds since the epoch of a record's or journal's UTC time, e.g. 2026-11-28T09:30:00.250Z."""
    return datetime.fromisoformat(utc_text).timestamp()

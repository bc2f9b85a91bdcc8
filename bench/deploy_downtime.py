"""Benchmark: wall time of a deploy and of a rollback on the local environment, and how long the app
did not answer during each (a poller asks /health every 50 ms from another thread).

    python bench/deploy_downtime.py [--env local]

It builds two packages of the demo (bench-1 and bench-2, the second with one more migration),
deploys bench-1, then measures `invoke deploy --version bench-2` and `invoke rollback`.
Only 127.0.0.1 is polled; every loop is bounded by the command it watches.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook import config  # noqa: E402

MIGRATION = "-- migrate:up\nCREATE TABLE bench_notes (id int);\n-- migrate:down\nDROP TABLE bench_notes;\n"


def invoke(*args: str) -> tuple[int, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-2000:])
    return result.returncode, time.monotonic() - started


class Poller(threading.Thread):
    """Asks the health URL every `interval` seconds until stopped; records each answer's time and result."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.samples, self.stop = url, interval, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            moment = time.monotonic()
            try:
                ok = requests.get(self.url, timeout=1).status_code == 200
            except requests.RequestException:
                ok = False
            self.samples.append((moment, ok))
            self.stop.wait(self.interval)

    def longest_gap(self) -> float:
        """The longest time between two successful answers (or from the first sample to one)."""
        last_ok, gap = self.samples[0][0], 0.0
        for moment, ok in self.samples:
            if ok:
                gap, last_ok = max(gap, moment - last_ok), moment
        return max(gap, self.samples[-1][0] - last_ok)


def measure(url: str, *args: str) -> str:
    poller = Poller(url)
    poller.start()
    code, seconds = invoke(*args)
    poller.stop.set()
    poller.join()
    failed = sum(1 for _, ok in poller.samples if not ok)
    return (f"{' '.join(args[:1])}: exit {code}, wall time {seconds:.1f} s, app did not answer for "
            f"{poller.longest_gap():.2f} s at most ({failed} of {len(poller.samples)} polls failed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    env_name = parser.parse_args().env
    env = config.load_environment(env_name)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "demo"
        shutil.copytree(ROOT / "demo", source)
        assert invoke("package", "--version", "bench-1", "--source", str(source))[0] == 0
        (source / "migrations" / "9001_bench_notes.sql").write_text(MIGRATION)
        assert invoke("package", "--version", "bench-2", "--source", str(source))[0] == 0
    assert invoke("deploy", "--env", env_name, "--version", "bench-1")[0] == 0, "the baseline deploy failed"
    print(measure(env.endpoints.health, "deploy", "--env", env_name, "--version", "bench-2"))
    print(measure(env.endpoints.health, "rollback", "--env", env_name))


if __name__ == "__main__":
    main()

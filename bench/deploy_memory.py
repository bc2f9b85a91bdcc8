"""Benchmark: the peak memory of a deploy with a small database and with one grown by `--mb` of rows in a
protected table, then of a deploy of a 1 MB package and of a `--package-mb` one, on a local environment;
the ratios last (the goal: within 10 %).

    python bench/deploy_memory.py [--env local] [--to 1.1.0] [--mb 300] [--package-mb 200]

The environment must be a local one that is up, with a release live and the package of `--to` built. Each
side is `invoke deploy --to` then `invoke rollback` back to the live release; the peak is the largest resident set of the
deploy's own python processes (the runbook, its checking process and its sessions), sampled every 0.1 s;
not the browser of the UI checks or the PostgreSQL clients, which are not the runbook's memory (GNU
time's peak over the whole tree gave 232 MB at 8 MB and 403 MB at 366 MB of database, while the
runbook's own processes stayed at 150 MB at most). The rows added to `items` are deleted after. The packages
are the demo with an incompressible file (versions 9.8.0 and 9.9.0), removed after.
"""

import argparse
import os
import secrets
import sys
import tempfile
import threading
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import blob_package, marked, must, rss_kb  # noqa: E402

MARKER = "RUNBOOK_BENCH_MEMORY"
ROW = 1000
"""Bytes of text per added row."""


class Peak:
    """The largest resident set, sampled every 0.1 s, of a python process whose environment carries the
    run's marker: the runbook and its checking process with its sessions, not the browser or the database
    clients they start."""

    def __init__(self, marker: str) -> None:
        self.marker, self.kb = f"{MARKER}={marker}", 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.done.wait(0.1):
            pythons = [rss_kb(status) for status in marked(self.marker) if status.startswith("Name:\tpython")]
            self.kb = max([self.kb, *pythons])


def peak_kb(*args: str) -> int:
    marker = secrets.token_hex(8)
    sampled = Peak(marker)
    sampled.thread.start()
    try:
        must([sys.executable, "-m", "invoke", *args], timeout=1800, env=os.environ | {MARKER: marker})
    finally:
        sampled.done.set()
        sampled.thread.join(5)
    return sampled.kb


def side(env: str, new: str) -> int:
    peak = peak_kb("deploy", "--env", env, "--version", new)
    peak_kb("rollback", "--env", env)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--to", dest="new", default="1.1.0")
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--package-mb", type=int, default=200)
    options = parser.parse_args()
    from runbook.database import queries
    from runbook.environments import open_environment

    env = open_environment(options.env, start_local=False)
    url = queries.url(env)
    small = side(options.env, options.new)
    with psycopg.connect(url, autocommit=True) as conn:
        base = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        first = conn.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
        conn.execute("INSERT INTO items (name) SELECT repeat(md5(g::text), %s) FROM generate_series(1, %s) g",
                     [ROW // 32, options.mb * 2**20 // ROW])
        grown = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    try:
        big = side(options.env, options.new)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM items WHERE id > %s", [first])
            conn.execute("VACUUM FULL items")  # the next run starts from the size this one did
    print(f"database {base / 2**20:.0f} MB: deploy peak {small / 1024:.0f} MB")
    print(f"database {grown / 2**20:.0f} MB: deploy peak {big / 1024:.0f} MB")
    print(f"ratio: {big / small:.2f} (goal: within 10 %)")
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for version, mb in (("9.8.0", 1), ("9.9.0", options.package_mb)):
            built = blob_package(Path(tmp), env.app.name, version, mb << 20, env.app.package_dir)
            try:
                peaks[mb] = side(options.env, version)
            finally:
                built.unlink()
    for mb, kb in peaks.items():
        print(f"package with {mb} MB: deploy peak {kb / 1024:.0f} MB")
    small, big = peaks.values()
    print(f"ratio: {big / small:.2f} (goal: within 10 %)")


if __name__ == "__main__":
    main()

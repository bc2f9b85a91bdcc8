"""Benchmark: the runbook's backup without its restore drill against `pg_dump -Fc` followed by
`pg_restore --list`, on a database of about 300 MB on the machine's PostgreSQL (127.0.0.1:5432).

    python bench/backup_vs_pg_dump.py [--mb 300] [--rounds 5]

The runbook's side (`backup.dump`) is what Step 3 does before the drill: a snapshot whose figures (each
table's row count and checksum) it takes alongside, pg_dump in that snapshot, `pg_restore --list` checked
against every table, and the dump's size and sha256. Rounds alternate; medians and their ratio, last.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import must  # noqa: E402
from bench.restore_drill import fill  # noqa: E402
from runbook import config  # noqa: E402
from runbook.database import backup  # noqa: E402
from tests.apps import environment, fresh_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fill(url, args.mb)
        backups = folder / "backups"
        backups.mkdir(mode=0o700)
        path = folder / "bench.yaml"
        path.write_text(yaml.safe_dump(environment(folder, url, folder / "state"), sort_keys=False))
        env = config.load_environment(str(path))
        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(f"database {size / 2**20:.0f} MB")
        plain, runbook = [], []
        for n in range(args.rounds):
            dump = backups / f"plain-{n}.dump"
            plain.append(must(["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={url}"]) +
                         must(["pg_restore", "--list", str(dump)]))
            dump.unlink()
            started = time.monotonic()
            dumped = backup.dump(env, str(backups / f"runbook-{n}.dump"))
            runbook.append(time.monotonic() - started)
            (backups / f"runbook-{n}.dump").unlink()
            print(f"round {n + 1}: pg_dump + list {plain[-1]:.2f} s, runbook backup {runbook[-1]:.2f} s "
                  f"({dumped.size_bytes / 2**20:.0f} MB dump)")
        a, b = statistics.median(runbook), statistics.median(plain)
        print(f"median: runbook backup without the drill {a:.2f} s, pg_dump -Fc + pg_restore --list {b:.2f} s: "
              f"{a / b:.2f}x")


if __name__ == "__main__":
    main()

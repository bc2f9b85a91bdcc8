"""Benchmark: what the restore drill adds to a backup, on a database of about 100 MB on the machine's
PostgreSQL (127.0.0.1:5432).

    python bench/restore_drill.py [--mb 100]

It fills a fresh database (dropped after) with a `customers` table of the size asked for and an `orders`
table referring to it, then times `pg_dump -Fc` alone, and the backup as the runbook takes it (snapshot
figures, dump, `pg_restore --list`, restore drill) at depth `full` and at depth `schema` with `orders`
protected; then with the rehearsal of two migrations on the full drill's copy: a new nullable column
(metadata only) and an update of every `customers` row (down: the reverse).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook import config  # noqa: E402
from runbook.database import backup, commands  # noqa: E402
from runbook.database.migrations import parse  # noqa: E402
from runbook.hosts import runner  # noqa: E402
from tests.apps import environment, fresh_database, merge  # noqa: E402

ROW_BYTES = 300
"""About what a `customers` row takes on disk, with its share of the index."""

MIGRATIONS = [parse("0002_vip.sql", "-- migrate:up\nALTER TABLE customers ADD COLUMN vip boolean;\n"
                                    "-- migrate:down\nALTER TABLE customers DROP COLUMN vip;\n"),
              parse("0003_upper.sql", "-- migrate:up\nUPDATE customers SET name = upper(name);\n"
                                      "-- migrate:down\nUPDATE customers SET name = lower(name);\n")]
"""What the rehearsal runs: one migration that touches no row, one that rewrites every row of the big table."""


def fill(url: str, mb: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id serial PRIMARY KEY, name text, note text, joined timestamptz DEFAULT now())")
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, total numeric)")
        conn.execute("INSERT INTO customers (name, note) SELECT md5(i::text), repeat(md5((i * 7)::text), 6) "
                     "FROM generate_series(1, %s) i", [mb * 2**20 // ROW_BYTES])
        conn.execute("INSERT INTO orders (customer, total) SELECT i, i * 0.5 FROM generate_series(1, 20000) i")
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    mb = parser.parse_args().mb
    with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fill(url, mb)
        (folder / "backups").mkdir(mode=0o700)
        base = environment(folder, url, folder / "state")

        def env(changes: dict) -> config.Environment:
            path = folder / "bench.yaml"
            path.write_text(yaml.safe_dump(merge(base, changes), sort_keys=False))
            return config.load_environment(str(path))

        full = env({})
        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        started = time.monotonic()
        runner.must(full.backup_host, commands.dump("pg_dump", str(folder / "backups" / "alone.dump"), 1, url),
                    what="pg_dump alone", kind="backup")
        alone = time.monotonic() - started
        print(f"database {size / 2**20:.0f} MB; pg_dump -Fc alone: {alone:.2f} s")
        schema = env({"database": {"drill": {"depth": "schema"}}, "rollback": {"protected_tables": ["orders"]}})
        rehearse = env({"database": {"drill": {"rehearse": True}}})
        for label, environment_, pending in (("full", full, []), ("schema", schema, []),
                                             ("full + rehearsal", rehearse, MIGRATIONS)):
            started = time.monotonic()
            run_id = f"20261202T000000Z-bench-backup-{label.replace(' + ', '-')}"
            taken = backup.take(environment_, f"drill-{label}", run_id, pending)
            total = time.monotonic() - started
            drill = taken.drill
            print(f"backup with a {label} drill: {total:.2f} s in all ({total / alone:.1f}x pg_dump alone); "
                  f"restore (time to recover) {drill.restore_seconds:.2f} s, comparison {drill.compare_seconds:.2f} s, "
                  f"{len(drill.compared)} tables compared")
            for r in drill.rehearsal:
                print(f"  rehearsed {r.migration}: up {r.up_seconds:.2f} s, down {r.down_seconds:.2f} s, "
                      f"locks {r.locks}, rows {r.rows}")


if __name__ == "__main__":
    main()

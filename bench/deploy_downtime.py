"""Benchmark: wall time of a deploy and of a rollback on the local environment, and how long the app
did not answer during each (a poller asks /health every 50 ms from another thread).

    python bench/deploy_downtime.py [--env local]

It builds two packages of the demo (bench-1 and bench-2, the second with one more migration),
deploys bench-1, then measures `invoke deploy --version bench-2` and `invoke rollback`.
Only 127.0.0.1 is polled; every loop is bounded by the command it watches.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Poller, build, environment, invoke  # noqa: E402

MIGRATION = "-- migrate:up\nCREATE TABLE bench_notes (id int);\n-- migrate:down\nDROP TABLE bench_notes;\n"


def measure(url: str, *args: str) -> str:
    poller = Poller(url)
    poller.start()
    code, seconds = invoke(*args)
    poller.stop.set()
    poller.join()
    failed = sum(1 for _, ok, _ in poller.samples if not ok)
    return (f"{' '.join(args[:1])}: exit {code}, wall time {seconds:.1f} s, app did not answer for "
            f"{poller.longest_gap():.2f} s at most ({failed} of {len(poller.samples)} polls failed)")


def main() -> None:
    env_name, env = environment(__doc__.splitlines()[0])
    build("bench-1")
    build("bench-2", {"9001_bench_notes.sql": MIGRATION})
    assert invoke("deploy", "--env", env_name, "--version", "bench-1")[0] == 0, "the baseline deploy failed"
    print(measure(env.endpoints.health, "deploy", "--env", env_name, "--version", "bench-2"))
    print(measure(env.endpoints.health, "rollback", "--env", env_name))


if __name__ == "__main__":
    main()

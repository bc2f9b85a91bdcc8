"""Benchmark: a deploy and a rollback on the local environment under a steady request load, with each
rollout strategy: wall time, failed requests, and the longest time without a successful answer.

    python bench/deploy_downtime.py [--env local]

For each strategy (`maintenance`, the runbook's stop-switch-migrate-start, and `rolling`, the graceful
reload, or behind a `load_balancer` each instance drained, restarted and returned in turn), a copy of the environment file differing only in `rollout.strategy` is written under .local/.
It builds two packages of the demo (bench-1 and bench-2, the second with one more, backward-compatible
migration), deploys bench-1, then measures `invoke deploy --version bench-2` and `invoke rollback`
while four clients ask /health back to back. For comparison, it also measures a plain restart of the
service (`supervisorctl restart`), the least a stop-then-start deploy can cost. Only the environment's own endpoint is asked; every loop
is bounded by the command it watches.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import build, environment, invoke, variant  # noqa: E402
from runbook import local  # noqa: E402
from tests.steady_load import Load  # noqa: E402

MIGRATION = "-- migrate:up\nCREATE TABLE bench_notes (id int);\n-- migrate:down\nDROP TABLE bench_notes;\n"
CLIENTS = 4


def measure(env, *args: str) -> str:
    with Load(env.endpoints.health, threads=CLIENTS, ca_file=env.endpoints.ca_file) as load:
        code, seconds = invoke(*args)
    return f"  {args[0]}: exit {code}, wall time {seconds:.1f} s; {load}"


def restart(env) -> str:
    """The service restarted alone under the same load."""
    with Load(env.endpoints.health, threads=CLIENTS, ca_file=env.endpoints.ca_file) as load:
        for service in env.services:
            local.supervisorctl(local.paths(env), "restart", service.name)
    return f"  service restart alone: {load}"


def main() -> None:
    env_name, env = environment(__doc__.splitlines()[0])
    build("bench-1")
    build("bench-2", {"9001_bench_notes.sql": MIGRATION})
    for strategy in ("maintenance", "rolling"):
        path = variant(env_name, strategy, {"rollout": {**env.rollout.model_dump(exclude_none=True), "strategy": strategy}})
        assert invoke("deploy", "--env", path, "--version", "bench-1")[0] == 0, "the baseline deploy failed"
        print(f"{strategy}:")
        print(measure(env, "deploy", "--env", path, "--version", "bench-2"), flush=True)
        print(measure(env, "rollback", "--env", path), flush=True)
    print(restart(env))


if __name__ == "__main__":
    main()

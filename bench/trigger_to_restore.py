"""Benchmark: the time from a rollback trigger's condition becoming true to the previous release
serving again, on the local environment.

    python bench/trigger_to_restore.py [--env local]

It deploys bench-1, then a release whose workers answer 500 once each has served 40 requests (it
passes its health checks and smoke tests, then degrades under the bake window's prober), polling the
status endpoint every 250 ms to see when bench-1 answers again. Only 127.0.0.1 is polled. It deploys
with a copy of the environment without `performance`, whose load would catch the release before the
bake window does.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import build, environment, epoch, invoke, variant  # noqa: E402
from tests.packages import failing_after_requests  # noqa: E402
from tests.steady_load import Load  # noqa: E402


def main() -> None:
    env_name, env = environment(__doc__.splitlines()[0])
    env_name = variant(env_name, "bake-only", {"performance": None})
    build("bench-1")
    build("bench-degrading", edit=lambda text: failing_after_requests(text, 40))
    assert invoke("deploy", "--env", env_name, "--version", "bench-1")[0] == 0, "the baseline deploy failed"
    with Load(env.endpoints.status, pause=0.25) as poller:
        code, seconds = invoke("deploy", "--env", env_name, "--version", "bench-degrading")
    reports = sorted(Path(__file__).resolve().parent.parent.glob("reports/*-deploy-*/record.json"))
    fired = json.loads(reports[-1].read_text())["bake"]["fired"]
    since, fired_at = epoch(fired["since"]), epoch(fired["fired_at"])
    back = next(moment for moment, _, version in poller.samples if moment > since and version == "bench-1")
    print(f"deploy of the degrading release: exit {code}, wall time {seconds:.1f} s; trigger '{fired['trigger']}' "
          f"({fired['condition']}): condition true -> fired {fired_at - since:.1f} s, "
          f"condition true -> bench-1 serving again {back - since:.1f} s")


if __name__ == "__main__":
    main()

"""Benchmark: a rollback's wall time with releases of about 1 MB and of about 200 MB: it switches `current`
back to a release already unpacked on the host, so its time must not grow with the release's size.

    python bench/rollback_vs_release_size.py [--env local] [--rounds 3]

The environment must be a local one that is up, with a release live. For each size it builds two packages of
the demo with an incompressible file of that size (versions 9.<size>.0 and 9.<size>.1), deploys the first,
then `--rounds` times deploys the second (untimed) and times `invoke rollback` to the first (a rolled-back
release cannot be rolled back to). At the end it removes the packages it built and deploys again the version
that was live.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import blob_package, must  # noqa: E402

SIZES = {"1 MB": 1 << 20, "200 MB": 200 << 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    from runbook.environments import open_environment

    env = open_environment(options.env, start_local=False)
    invoke = [sys.executable, "-m", "invoke"]
    live = (env.app.root / "current").resolve().name
    built: list[Path] = []
    medians = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
            for n, (label, size) in enumerate(SIZES.items()):
                versions = [f"9.{n}.0", f"9.{n}.1"]
                built += [blob_package(Path(tmp), env.app.name, v, size, env.app.package_dir) for v in versions]
                must([*invoke, "deploy", "--env", options.env, "--version", versions[0]])
                times = []
                for _ in range(options.rounds):
                    must([*invoke, "deploy", "--env", options.env, "--version", versions[1]])
                    times.append(must([*invoke, "rollback", "--env", options.env]))
                medians[label] = statistics.median(times)
                print(f"{label} releases: rollback median {medians[label]:.2f} s ({', '.join(f'{t:.2f}' for t in times)})")
    finally:
        for path in built:
            path.unlink(missing_ok=True)
        must([*invoke, "deploy", "--env", options.env, "--version", live.split("-", 1)[1]])
    small, big = medians.values()
    print(f"ratio 200 MB / 1 MB: {big / small:.2f} (goal: stays 1.00)")


if __name__ == "__main__":
    main()

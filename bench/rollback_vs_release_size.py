"""Benchmark: a rollback's wall time with releases of about 1 MB and of about 200 MB: it switches `current`
back to a release already unpacked on the host, so its time must not grow with the release's size.

    python bench/rollback_vs_release_size.py [--env local] [--rounds 3]

The environment must be a local one that is up, with a release live. For each size it builds two packages of
the demo with an incompressible file of that size (versions 9.<size>.0 and 9.<size>.1), deploys both, then
times `invoke rollback` (to the first) and `invoke rollback --to` the second, alternately, `--rounds` times
each. At the end it rolls back to the release that was live and removes the packages it built.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, must  # noqa: E402

SIZES = {"1 MB": 1 << 20, "200 MB": 200 << 20}


def build(env, tmp: Path, version: str, size: int) -> Path:
    """The demo with `size` random bytes in data/blob.bin, as a package of `version` in the package folder."""
    from runbook.release import package

    source = tmp / f"demo-{version}"
    shutil.copytree(ROOT / "demo", source, ignore=shutil.ignore_patterns("__pycache__", ".env", "uploads"))
    (source / "data").mkdir(exist_ok=True)
    with (source / "data" / "blob.bin").open("wb") as out:
        for _ in range(size // package.CHUNK):
            out.write(os.urandom(package.CHUNK))
    built = package.build(source, env.app.name, version, env.app.package_dir)
    shutil.rmtree(source)
    return built


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
                built += [build(env, Path(tmp), v, size) for v in versions]
                for version in versions:
                    must([*invoke, "deploy", "--env", options.env, "--version", version])
                second = (env.app.root / "current").resolve().name
                times = []
                for _ in range(options.rounds):
                    times.append(must([*invoke, "rollback", "--env", options.env]))
                    times.append(must([*invoke, "rollback", "--env", options.env, "--to", second]))
                medians[label] = statistics.median(times)
                print(f"{label} releases: rollback median {medians[label]:.2f} s ({', '.join(f'{t:.2f}' for t in times)})")
    finally:
        must([*invoke, "rollback", "--env", options.env, "--to", live])
        for path in built:
            path.unlink(missing_ok=True)
    small, big = medians.values()
    print(f"ratio 200 MB / 1 MB: {big / small:.2f} (goal: stays 1.00)")


if __name__ == "__main__":
    main()

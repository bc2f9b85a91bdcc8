"""The tool's start-up: `invoke --list`, `invoke status` and `invoke local.up` with all already up, timed
before (the code of `--rev`, default main) and after (this tree), interleaved; medians, the ratio last.

    python bench/startup.py --env environments/try-NAME.yaml --runs 7

The environment must be a local one whose stack is up (`invoke local.up --env ...`). Both sides run the
same launcher on the same project folder (its environments, demo and state), each with its own code:
the `--rev` side from `git archive` in a temporary folder.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, as_installed  # noqa: E402

LAUNCHER = "import sys, pathlib, runbook; runbook.ROOT = pathlib.Path(sys.argv[1]); sys.argv[1:2] = []; " \
           "from invoke.main import program; program.run(['invoke', '--search-root', sys.argv[1], *sys.argv[2:]])"
"""invoke on a code tree (argv[2], also first on PYTHONPATH), with the project folder (argv[1]) as ROOT."""


def commands(env: str) -> dict[str, list[str]]:
    return {"invoke --list": ["--list"], "invoke status": ["status", "--env", env],
            "invoke local.up (all up)": ["local.up", "--env", env]}


def code_tree(rev: str, into: Path) -> Path:
    """The files of `rev` (its runbook package and tasks.py among them) unpacked under `into`."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True,
                             timeout=120).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def timed(tree: Path, args: list[str]) -> float:
    argv = [sys.executable, "-c", LAUNCHER, str(ROOT), str(tree), *args]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(tree)})
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree}: invoke {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="a local environment whose stack is up")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rev", default="main", help="the code to compare with (default: main)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        sides = {options.rev: code_tree(options.rev, Path(tmp)), "this tree": ROOT}
        cases = commands(options.env)
        for tree in sides.values():  # compile, warm the caches, and fail early when the stack is not up
            as_installed(tree)
            timed(tree, cases["invoke local.up (all up)"])
        took = {(side, case): [] for side in sides for case in cases}
        for _ in range(options.runs):
            for case, args in cases.items():
                for side, tree in sides.items():
                    took[side, case].append(timed(tree, args))
    print(f"medians of {options.runs} interleaved runs, seconds")
    print(f"{'':28}{options.rev:>12}{'this tree':>12}")
    for case in cases:
        print(f"{case:28}{statistics.median(took[options.rev, case]):12.2f}"
              f"{statistics.median(took['this tree', case]):12.2f}")
    for case in cases:
        ratio = statistics.median(took["this tree", case]) / statistics.median(took[options.rev, case])
        print(f"ratio this tree / {options.rev}, {case}: {ratio:.2f}")


if __name__ == "__main__":
    main()

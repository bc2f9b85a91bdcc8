"""What rewriting `reports/index.html` costs a run as runs accumulate: with 10, 100 and 1,000 runs under
`reports/`, the code of `--rev` (default main) against this tree, each side in a fresh process, interleaved.

    python bench/history_page.py [--rev main] [--sizes 10 100 1000] [--runs 5]

The runs are copies of the newest deploy and preflight under this tree's `reports/` (their `record.json`
and journal; one deploy to every two preflights), in temporary folders. Each figure is one `history.write`
after a run was added, as a run's end does it (the first write, which reads every record, is not counted);
medians, and last the ratio of the largest size's figure to the smallest's for each side.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.startup import code_tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHILD = """import shutil, sys, time
from pathlib import Path
from runbook.record import history
reports, model = Path(sys.argv[1]), Path(sys.argv[2])
history.write(reports)
new = reports / ("99991231T000000Z" + model.name[16:])
shutil.copytree(model, new)
started = time.perf_counter()
history.write(reports)
print(time.perf_counter() - started)
shutil.rmtree(new)
"""


def models() -> list[Path]:
    """The newest deploy's and the newest preflight's run folders under `reports/`."""
    found = []
    for kind in ("deploy", "preflight"):
        folders = sorted(f for f in (ROOT / "reports").glob(f"*-{kind}-*") if (f / "record.json").exists())
        if not folders:
            raise SystemExit(f"no {kind} run with a record under {ROOT / 'reports'}: run `invoke {kind} --env local` first")
        found.append(folders[-1])
    return found


def fill(reports: Path, size: int, deploy: Path, preflight: Path) -> None:
    for n in range(size):
        model = deploy if n % 3 == 0 else preflight
        target = reports / f"{model.name[:-6]}{n:06x}"
        target.mkdir(parents=True)
        for name in ("record.json", "journal.jsonl"):
            shutil.copy(model / name, target / name)


def timed(tree: Path, reports: Path, model: Path) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, str(reports), str(model)], cwd=reports, capture_output=True, text=True,
                          timeout=600, env=os.environ | {"PYTHONPATH": str(tree)})
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip()[-2000:]}")
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    deploy, preflight = models()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {args.rev: code_tree(args.rev, Path(scratch) / "before"), "this tree": ROOT}
        figures = {side: {} for side in trees}
        for size in args.sizes:
            folders = {side: Path(scratch) / f"reports-{size}-{n}" for n, side in enumerate(trees)}
            for folder in folders.values():
                fill(folder, size, deploy, preflight)
            times = {side: [] for side in trees}
            for _ in range(args.runs):
                for side, tree in trees.items():
                    times[side].append(timed(tree, folders[side], preflight))
            for side in trees:
                figures[side][size] = statistics.median(times[side])
                print(f"{size} runs, {side}: median {figures[side][size]:.4f} s "
                      f"({', '.join(f'{t:.4f}' for t in times[side])})")
            for folder in folders.values():
                shutil.rmtree(folder)
    small, large = min(args.sizes), max(args.sizes)
    for side in trees:
        print(f"{side}: {large} runs / {small} runs = {figures[side][large] / figures[side][small]:.1f}x "
              f"({figures[side][large]:.4f} s against {figures[side][small]:.4f} s)")


if __name__ == "__main__":
    main()

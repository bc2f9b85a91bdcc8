"""Peak memory of the package checks (read, presence, integrity, unlisted files, VERSION, checksum) on a
1 MB and a 200 MB package, before (the code of `--rev`, default main) and after (this tree).

    python bench/package_memory.py --rev main

The packages are the demo with an incompressible file added, built once in a temporary folder; each
measurement is a fresh Python process (its peak RSS, `ru_maxrss`), importing the package module of its
side's code.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import blob_package  # noqa: E402
from bench.startup import code_tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"1 MB": 1 << 20, "200 MB": 200 << 20}
CHILD = """import resource, sys
from pathlib import Path
from runbook.release import package
contents = package.read(Path(sys.argv[1]))
findings = package.presence(contents) + package.integrity(contents) + package.unlisted_files(contents)
findings.append(package.version_matches(contents, "1.0.0"))
package.checksum(Path(sys.argv[1]))
assert all(f.ok for f in findings), findings
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
"""The checks on the package argv[1]; prints the peak RSS in KiB."""


def peak_kib(tree: Path, path: Path) -> int:
    result = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                            capture_output=True, text=True, timeout=600, check=True)
    return int(result.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="main")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sides = {options.rev: code_tree(options.rev, Path(tmp) / "before"), "this tree": ROOT}
        packages = {label: blob_package(Path(tmp), "demo", "1.0.0", size, Path(tmp) / label.replace(" ", ""))
                    for label, size in SIZES.items()}
        print(f"{'code':<12} {'package':<8} {'bytes':>11} {'peak RSS':>10}")
        for side, tree in sides.items():
            for label, path in packages.items():
                print(f"{side:<12} {label:<8} {path.stat().st_size:>11} {peak_kib(tree, path) / 1024:>7.1f} MB")


if __name__ == "__main__":
    main()

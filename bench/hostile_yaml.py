"""How fast and in how little memory hostile environment files are refused: the billion laughs (9 levels
of 9 aliases), 200 plain aliases, and a 2 MiB file. Prints wall time and peak memory of each refusal.

    python bench/hostile_yaml.py
"""

import tempfile
import time
import tracemalloc
from pathlib import Path

from runbook import config
from runbook.errors import ConfigError


def laughs(levels: int) -> str:
    lines = ["name: laughs", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


CASES = {
    "billion laughs (9 levels)": laughs(9),
    "200 aliases of one anchor": "name: many\na: &a 1\nb: [" + ", ".join(["*a"] * 200) + "]\n",
    "a 2 MiB file": "name: huge\n" + "# padding\n" * 210_000,
}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for label, text in CASES.items():
            path = Path(folder) / "hostile.yaml"
            path.write_text(text)
            tracemalloc.start()
            started = time.perf_counter()
            try:
                config.load_environment(str(path))
                verdict = "ACCEPTED (a bug)"
            except ConfigError as e:
                verdict = f"refused: {str(e).split(': ', 1)[1][:70]}"
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{label:28} {elapsed * 1000:7.1f} ms  peak {peak / 2**20:5.1f} MiB  {verdict}")


if __name__ == "__main__":
    main()

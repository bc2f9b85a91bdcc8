"""Benchmark: `invoke deploy` of a version onto the live one, beyond its configured baseline and bake windows,
against a shell script doing the same essential work (dump and list, unpack and check, env file, stop,
switch, migrate, start, health and status), interleaved; medians, the ratio last.

It also states the tool's own time in each deploy, from its record and journal: the wall time less the
configured windows, the checks (every scenario's duration) and the essential work (the phases that act,
as timed by the journal). What is left is the runbook's own: starting, the verifying phases' pytest
sessions around their checks, the windows' overrun, the record and its pages.

    python bench/deploy_vs_script.py [--env local] [--to 1.1.0] [--runs 3]

The environment must be a local one that is up, with a release live (deployed by the runbook) and the
package of `--to` built. After each side, the environment is returned to the live release untimed: the runbook's side by
`invoke rollback`, the script's by switching `current` back and restarting the services. Before each deploy, the
rows the demo's smoke checks left are deleted (untimed): each deploy adds items and files to the pages its
browser checks load and shoot, which made every later deploy's checks slower (a screenshot of /items took
0.05 s, then 0.16 s some 30 deploys later).
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import as_installed, must  # noqa: E402

SCRIPT = """set -euo pipefail
new={app}/releases/$(date -u +%Y%m%dT%H%M%SZ)-{version}-script
{pg_dump} -Fc -f {backup} {dburl}
{pg_restore} --list {backup} > /dev/null
mkdir -p "$new"
tar -xzf {package} -C "$new" --strip-components=1
(cd "$new" && sha256sum --quiet -c MANIFEST.sha256)
cp -p {app}/current/.env "$new/.env"
for d in {linked}; do ln -s {app}/shared/$d "$new/$d"; done
{ctl} stop {services}
ln -sfn "$new" {app}/current.next && mv -T {app}/current.next {app}/current
(cd "$new" && {python} bin/migrate up)
{ctl} start {services}
curl -fsS --cacert {ca} {health} > /dev/null
curl -fsS --cacert {ca} {status} | grep -q '"version": *"{version}"'
"""

SMOKE_DATA = ["DELETE FROM items WHERE name LIKE 'runbook-%'", "DELETE FROM files WHERE name LIKE 'runbook-smoke-%'"]
"""The rows the demo's smoke checks leave (Step 11's item and file, Step 12's item)."""

RESET = """set -euo pipefail
script=$(readlink {app}/current)
ln -sfn {previous} {app}/current.next && mv -T {app}/current.next {app}/current
{ctl} restart {services} > /dev/null
rm -rf "$script" {backup}
"""


def own_seconds(wall: float, windows: float, reports: Path) -> tuple[float, float, float]:
    """The checks, the essential work and the tool's own time of the one deploy recorded under `reports`."""
    (folder,) = [f for f in reports.iterdir() if (f / "record.json").exists() and "-deploy-" in f.name]
    record = json.loads((folder / "record.json").read_text())
    checks = sum(s["duration"] or 0 for p in record["phases"] for s in p.get("scenarios") or [])
    acting = {p["name"] for p in record["phases"] if not p.get("scenarios") and p["name"] not in ("baseline", "bake")}
    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    work = sum(e["seconds"] for e in events if e["event"] == "phase finished" and e["phase"] in acting)
    return checks, work, wall - windows - checks - work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--to", dest="new", default="1.1.0")
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    import psycopg

    from runbook import local
    from runbook.database import queries
    from runbook.environments import open_environment
    from runbook.release import package

    env = open_environment(options.env, start_local=False)
    as_installed()
    app = env.app.root
    previous = (app / "current").resolve()
    q = shlex.quote
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        fields = dict(
            app=q(str(app)), version=options.new, pg_dump=q(env.database.pg_dump),
            pg_restore=q(str(Path(env.database.pg_dump).with_name("pg_restore"))),
            backup=q(f"{tmp}/script.dump"), dburl=q(queries.url(env)), linked=" ".join(env.app.linked_dirs),
            package=q(str(env.app.package_dir / package.file_name(env.app.name, options.new))),
            ctl=f"{q(str(Path(sys.executable).parent / 'supervisorctl'))} -c {q(str(local.paths(env).supervisord_conf))}",
            services=" ".join(s.name for s in env.services), python=q(env.python),
            ca=q(str(env.endpoints.ca_file)), health=q(env.endpoints.health), status=q(env.endpoints.status),
            previous=q(str(previous)))
        script, reset = Path(tmp) / "deploy.sh", Path(tmp) / "reset.sh"
        script.write_text(SCRIPT.format(**fields))
        reset.write_text(RESET.format(**fields))
        windows = env.watch.baseline_seconds + env.watch.bake_seconds
        invoke = [sys.executable, "-m", "invoke"]
        times: dict[str, list[float]] = {"runbook (beyond its windows)": [], "shell script": []}
        own: list[float] = []
        for n in range(options.runs):
            with psycopg.connect(queries.url(env), connect_timeout=10) as connection:
                for statement in SMOKE_DATA:
                    connection.execute(statement)
            reports = Path(tmp) / f"reports-{n}"
            wall = must([*invoke, "deploy", "--env", options.env, "--version", options.new],
                        env=os.environ | {"RUNBOOK_REPORTS": str(reports)})
            times["runbook (beyond its windows)"].append(wall - windows)
            checks, work, left = own_seconds(wall, windows, reports)
            own.append(left)
            print(f"deploy {n + 1}: {wall:.2f} s = windows {windows:g} s + checks {checks:.2f} s + essential work "
                  f"{work:.2f} s + the tool's own {left:.2f} s")
            must([*invoke, "rollback", "--env", options.env], env=os.environ | {"RUNBOOK_REPORTS": str(reports)})
            times["shell script"].append(must(["bash", str(script)]))
            must(["bash", str(reset)])
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    tool, plain = (statistics.median(v) for v in times.values())
    print(f"configured windows subtracted: {windows} s")
    print(f"the tool's own time in a deploy: median {statistics.median(own):.2f} s (goal <= 2 s)")
    print(f"ratio runbook / script: {tool / plain:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()

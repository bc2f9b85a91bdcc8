"""Benchmark: the preflight gate on a fleet of 1, 3 and 10 real hosts, with and without 50 ms added to
each host's link; the ssh commands each host took in each phase; a rolling deploy's wall time on 3 hosts.

    sudo python bench/fleet.py [--sizes 1 3 10] [--latency 50]

The hosts are the tests' own (tests/fleet.py: network namespaces, an sshd in each, the demo app under a
supervisord of its own, the machine's PostgreSQL, Redis and RabbitMQ forwarded to a shared address);
nothing is sent anywhere else. Round trips are counted by an `ssh` first on PATH that notes each call
and then runs the real one: the runbook, testinfra and rsync all start `ssh`, and each call with a
reused connection costs one session's round trips. Each call is put in the phase that was running
then, from the run's journal.
"""

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import epoch  # noqa: E402
from tests import apps  # noqa: E402
from tests import fleet as fleets  # noqa: E402
from tests.fleet_app import fleet_app  # noqa: E402

SSH_WRAPPER = """#!/bin/sh
printf '%s\\t%s\\n' "$(date +%s.%N)" "$(printf '%s ' "$@" | tr '\\n\\t' '  ')" >> "$RUNBOOK_BENCH_SSH_LOG"
exec {ssh} "$@"
"""


def phases(run_folder: Path) -> list[tuple[float, float, str]]:
    """(start, end, name) of each phase of the run, from its journal."""
    started, spans = {}, []
    for line in (run_folder / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        key = (event.get("sequence"), event.get("phase"))
        if event["event"] == "phase started":
            started[key] = epoch(event["at"])
        elif event["event"] == "phase finished":
            spans.append((started.pop(key), epoch(event["at"]), f"{key[0]}:{key[1]}"))
    return spans


def round_trips(log: Path, hosts: fleets.Fleet, spans: list[tuple[float, float, str]]) -> dict[str, dict[str, int]]:
    """ssh calls per phase, per host (by the host's address in the call)."""
    counts: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.Counter())
    for line in log.read_text().splitlines() if log.exists() else []:
        moment, args = line.split("\t", 1)
        host = next((h.name for h in hosts if h.address in args.split() or f"@{h.address}" in args), None)
        phase = next((name for start, end, name in spans if start <= float(moment) <= end), "(between phases)")
        if host:
            counts[phase][host] += 1
    return counts


def timed(folder: Path, log: Path, *args: str) -> tuple[apps.Result, float]:
    started = time.monotonic()
    result = apps.invoke(folder / "reports", *args, timeout=1800, extra_env={
        "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}", "RUNBOOK_BENCH_SSH_LOG": str(log)})
    return result, time.monotonic() - started


def describe(counts: dict[str, dict[str, int]], spans: list[tuple[float, float, str]]) -> str:
    seconds = {name: end - start for start, end, name in spans}
    lines = []
    for phase, per_host in counts.items():
        values = sorted(per_host.values())
        lines.append(f"    {phase}: {seconds.get(phase, 0):.1f} s, {values[0]}-{values[-1]} ssh calls per host "
                     f"({len(values)} hosts)")
    return "\n".join(lines)


def run(count: int, latency: int, deploy: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        folder = Path(tmp)
        (folder / "bin").mkdir()
        (folder / "bin" / "ssh").write_text(SSH_WRAPPER.format(ssh=shutil.which("ssh")))
        (folder / "bin" / "ssh").chmod(0o755)
        with fleets.fleet(count, folder / "fleet", latency_ms=latency, forward=fleets.MACHINE_SERVICES) as hosts, \
                apps.fresh_database() as database, fleet_app(hosts, folder / "app", database) as app:
            apps.build(folder / "app", "1.0.0")
            log = folder / "ssh.log"
            result, seconds = timed(folder, log, "preflight", "--env", str(app.env_file), "--version", "1.0.0")
            print(f"preflight, {count} host(s), +{latency} ms: exit {result.code}, {seconds:.1f} s")
            spans = phases(result.folder)
            print(describe(round_trips(log, hosts, spans), spans), flush=True)
            if not deploy:
                return
            app.change({"rollout": {"strategy": "rolling", "serial": [1, "100%"]}})
            log.unlink()
            shutil.rmtree(folder / "reports")
            result, seconds = timed(folder, log, "deploy", "--env", str(app.env_file), "--version", "1.0.0")
            print(f"rolling deploy [1, 100%], {count} hosts, +{latency} ms: exit {result.code}, {seconds:.1f} s")
            spans = phases(result.folder)
            print(describe(round_trips(log, hosts, spans), spans), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--latency", type=int, default=50)
    options = parser.parse_args()
    reason = fleets.can_make_namespaces()
    if reason:
        sys.exit(f"cannot make the fleet's hosts here: {reason}")
    for latency in (0, options.latency):
        for count in options.sizes:
            run(count, latency, deploy=count == 3)


if __name__ == "__main__":
    main()

"""Benchmark: preflight and a rolling deploy (`serial: [1, "25%", "100%"]`) on fleets of 1, 10 and 50 real
hosts, with and without 50 ms added to each host's link, at `ssh.forks` (default: the runbook's).

    sudo python bench/fleet.py [--sizes 1 10 50] [--latencies 0 50] [--forks N]

Per run: wall time; ssh calls per host in each phase (each call on a reused connection is one session's
round trips); the runner's peak memory (the resident memory of every process of the run, ssh clients
included) and its peak of open ssh connections and running ssh clients, sampled every 0.2 s; for the
deploy, each batch's time (from its first phase's start to its last phase's end). The goals: preflight on
50 hosts at +50 ms within 3x one host's; the 50-host deploy's batches within the number of batches times
one host's batch.

The hosts are the tests' own (tests/fleet.py: network namespaces, an sshd in each, the demo app under a
supervisord of its own, the machine's PostgreSQL, Redis and RabbitMQ forwarded to a shared address);
nothing is sent anywhere else. ssh calls are counted by an `ssh` first on PATH that notes each call and
runs the real one; each call is put in the phase that was running then, from the run's journal.
"""

import argparse
import collections
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import epoch, marked, rss_kb  # noqa: E402
from runbook import config  # noqa: E402
from runbook.engine.sequences import deploy_sequence  # noqa: E402
from tests import apps, cli, packages  # noqa: E402
from tests import fleet as fleets  # noqa: E402
from tests.fleet_app import fleet_app  # noqa: E402

SSH_WRAPPER = """#!/bin/sh
printf '%s\\t%s\\n' "$(date +%s.%N)" "$(printf '%s ' "$@" | tr '\\n\\t' '  ')" >> "$RUNBOOK_BENCH_SSH_LOG"
exec {ssh} "$@"
"""
SERIAL = [1, "25%", "100%"]
Span = tuple[float, float, str]


class Sampler:
    """Samples, every 0.2 s until stopped, the processes whose environment carries the run's marker (the
    runbook, its checking process, its ssh clients): their summed resident memory, how many are ssh clients,
    and the established TCP connections to port 22 of the fleet's hosts (the root namespace holds the
    clients' ends)."""

    def __init__(self, marker: str, addresses: list[str]) -> None:
        self.marker = f"RUNBOOK_BENCH_SSH_LOG={marker}"
        self.remotes = {f"{struct.unpack('<I', socket.inet_aton(a))[0]:08X}:0016" for a in addresses}
        self.rss = self.clients = self.connections = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.done.wait(0.2):
            statuses = list(marked(self.marker))
            rss = sum(rss_kb(status) * 1024 for status in statuses)
            clients = sum(status.startswith("Name:\tssh\n") for status in statuses)
            self.rss, self.clients = max(self.rss, rss), max(self.clients, clients)
            self.connections = max(self.connections, self._established())

    def _established(self) -> int:
        """TCP connections of this namespace in state ESTABLISHED (01) to port 22 of a fleet host."""
        fields = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        return sum(1 for f in fields if f[2] in self.remotes and f[3] == "01")


def phases(run_folder: Path) -> list[Span]:
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


def batches(spans: list[Span], per_batch: set[str]) -> list[float]:
    """Each batch's seconds, first phase's start to last phase's end; phases of batch N end in `-N` when
    there are several, else the per-batch phases make one batch."""
    grouped: dict[int, list[Span]] = collections.defaultdict(list)
    for span in spans:
        sequence, name = span[2].split(":", 1)
        if sequence != "deploy":
            continue
        numbered = re.fullmatch(r"(.+)-(\d+)", name)
        if numbered and numbered[1] in per_batch:
            grouped[int(numbered[2])].append(span)
        elif name in per_batch:
            grouped[1].append(span)
    return [max(s[1] for s in group) - min(s[0] for s in group) for _, group in sorted(grouped.items())]


def round_trips(log: Path, hosts: fleets.Fleet, spans: list[Span]) -> dict[str, list[int]]:
    """ssh calls per phase: the sorted counts of the hosts called in it (by the host's address in the call)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    addresses = {h.address: h.name for h in hosts}
    for line in log.read_text().splitlines() if log.exists() else []:
        moment, args = line.split("\t", 1)
        host = next((name for address, name in addresses.items()
                     if address in args.split() or f"@{address}" in args), None)
        phase = next((name for start, end, name in spans if start <= float(moment) <= end), "(between phases)")
        if host:
            counts[phase][host] += 1
    return {phase: sorted(per_host.values()) for phase, per_host in counts.items()}


def timed(folder: Path, log: Path, hosts: fleets.Fleet, *args: str) -> tuple[cli.Result, float, Sampler]:
    log.unlink(missing_ok=True)
    shutil.rmtree(folder / "reports", ignore_errors=True)
    started = time.monotonic()
    with Sampler(str(log), [h.address for h in hosts]) as sampled:
        result = cli.invoke(folder / "reports", *args, timeout=3600, extra_env={
            "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}", "RUNBOOK_BENCH_SSH_LOG": str(log)})
    return result, time.monotonic() - started, sampled


def report(what: str, result: cli.Result, seconds: float, sampled: Sampler, log: Path, hosts) -> list[Span]:
    spans = phases(result.folder) if result.folder else []
    print(f"{what}: exit {result.code}, {seconds:.1f} s; runner peak {sampled.rss / 2**20:.0f} MB, "
          f"{sampled.connections} ssh connections and {sampled.clients} ssh clients at most", flush=True)
    if result.code != 0:
        print(result.output[-3000:])
    seconds_of = {name: end - start for start, end, name in spans}
    for phase, values in round_trips(log, hosts, spans).items():
        print(f"    {phase}: {seconds_of.get(phase, 0):.1f} s, {values[0]}-{values[-1]} ssh calls per host "
              f"({len(values)} hosts)")
    return spans


def run(count: int, latency: int, forks: int | None) -> dict:
    """Preflight, then a rolling deploy of 1.1.0 over a live 1.0.0 (deployed first, untimed)."""
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        folder = Path(tmp)
        (folder / "bin").mkdir()
        (folder / "bin" / "ssh").write_text(SSH_WRAPPER.format(ssh=shutil.which("ssh")))
        (folder / "bin" / "ssh").chmod(0o755)
        with fleets.fleet(count, folder / "fleet", forward=fleets.MACHINE_SERVICES) as hosts, \
                apps.fresh_database() as database, fleet_app(hosts, folder / "app", database) as app:
            if forks:
                app.change({"ssh": {"forks": forks}})
            if latency:  # the watch's requests cross the slowed link: give them time (its windows are not timed)
                app.change({"watch": {"interval_seconds": 1, "timeout": 0.9, "latency_floor_seconds": 1.5, "min_requests": 2}})
            packages.build(folder / "app", "1.0.0")
            packages.build(folder / "app", "1.1.0", edit=lambda text: text + "\n# 1.1.0\n")
            env = str(app.env_file)
            first = cli.invoke(folder / "first", "deploy", "--env", env, "--version", "1.0.0", timeout=3600)
            if first.code != 0:
                raise SystemExit(f"the first deploy on {count} hosts failed:\n{first.output[-3000:]}")
            hosts.set_latency(latency)
            log, label = folder / "ssh.log", f"{count} host(s), +{latency} ms, forks {forks or 'default'}"
            result, preflight, sampled = timed(folder, log, hosts, "preflight", "--env", env, "--version", "1.1.0")
            report(f"preflight, {label}", result, preflight, sampled, log, hosts)
            app.change({"rollout": {"strategy": "rolling", "serial": SERIAL}})
            per_batch = {p.name for p in deploy_sequence(config.load_environment(env)) if p.per_batch}
            result, deploy, sampled = timed(folder, log, hosts, "deploy", "--env", env, "--version", "1.1.0")
            spans = report(f"rolling deploy {SERIAL}, {label}", result, deploy, sampled, log, hosts)
            each = batches(spans, per_batch)
            print(f"    batches: {', '.join(f'{s:.1f} s' for s in each)}", flush=True)
            return {"preflight": preflight, "deploy": deploy, "batches": each}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 50], help="ms added to each host's link")
    parser.add_argument("--forks", type=int, default=None)
    options = parser.parse_args()
    reason = fleets.can_make_namespaces()
    if reason:
        sys.exit(f"cannot make the fleet's hosts here: {reason}")
    figures = {(count, latency): run(count, latency, options.forks)
               for latency in options.latencies for count in options.sizes}
    one, most = min(options.sizes), max(options.sizes)
    for latency in options.latencies:
        small, big = figures[(one, latency)], figures[(most, latency)]
        allowed = len(big["batches"]) * sum(small["batches"])
        print(f"+{latency} ms: preflight {most} hosts / {one}: {big['preflight'] / small['preflight']:.2f}x (goal <= 3x); "
              f"deploy batches {most} hosts {sum(big['batches']):.1f} s vs {len(big['batches'])} x one host's "
              f"batch {sum(small['batches']):.1f} s = {allowed:.1f} s: {sum(big['batches']) / allowed:.2f}x (goal <= 1x)")


if __name__ == "__main__":
    main()

"""Performance under load (runbook Steps 11 and 20): a short load against the environment's own app once
the release is verified, and what the app's processes used of each host meanwhile.

The load sends GET requests in turn to `performance.paths` on the origin of `endpoints.health`, from
`concurrency` connections at once, until `requests` are sent or `seconds` have passed, whichever comes
first (a request still in flight then may take up to `endpoints.timeout` more). A request fails when it
gets no answer or a status outside 2xx; p95 is taken over the answered requests' latencies, with the
nearest-rank percentile the release watch uses.

Memory and CPU are read on each host of the measured service, in one script before the load and one
after: the service's main process (`supervisorctl pid NAME`, or systemd's MainPID) and all its
descendants. Memory is their resident set sizes added up (pages a worker shares with its parent count
in both: an upper bound); CPU is their user and system time in the window over its length on the
host's clock (100% = one core busy).

    measured = performance.measure(env)
    print(measured.load)      # 150 requests to http://127.0.0.1:8710 (...) in 1.21 s ...; p95 latency 8.1 ms
    performance.latency(measured.load, env.performance.latency_factor, baseline_p95, first_deploy=False)
    performance.memory(measured.usage, env.performance.max_memory_mb)   # a Finding per host
"""

from collections.abc import Callable
from dataclasses import dataclass

from runbook.checks.traffic import LoadResult, load
from runbook.checks.usage import Unmeasured, Usage, usage
from runbook.config import Environment, Service
from runbook.engine.context import RunContext
from runbook.findings import Finding, NotConfigured
from runbook.watch.metrics import milliseconds, percent


def measured_service(env: Environment) -> Service:
    """`performance.service`, else the first service (the environment file is refused without one)."""
    name = env.performance.service
    return next(s for s in env.services if name in (None, s.name))


@dataclass(frozen=True)
class Measurement:
    """The load and what the measured service used of each host meanwhile."""

    load: LoadResult
    service: str
    usage: list[Usage | Unmeasured]

    def usage_text(self) -> str:
        return "\n".join(map(str, self.usage))


def measure(env: Environment) -> Measurement:
    """The environment's configured load, with the memory and CPU of its service on each host."""
    service = measured_service(env)
    result, used = usage(env, service, lambda: load(env))
    return Measurement(result, service.name, used)


# --- judging -----------------------------------------------------------------------------------------


def latency(result: LoadResult, factor: float, baseline_p95: float | None, first_deploy: bool) -> Finding:
    """p95 under load at most `factor` times the pre-deploy baseline's; without a baseline, nothing is
    compared and the finding says why."""
    p95 = result.p95_seconds
    if p95 is None:
        return Finding(result.origin, False, f"none of the {result.requests} requests was answered: no latency to judge")
    measured = f"p95 latency under load {milliseconds(p95)} over {result.requests} requests"
    if baseline_p95 is None:
        why = ("first deploy (no release was live before)" if first_deploy
               else "the release live before answered none of the baseline's requests")
        return Finding(result.origin, True, f"no baseline: {why}; {measured}, not compared")
    limit = factor * baseline_p95
    return Finding(result.origin, p95 <= limit,
                   f"{measured}; limit {factor:g} x baseline {milliseconds(baseline_p95)} = {milliseconds(limit)}")


def error_rate(result: LoadResult, limit: float, baseline: float | None = None) -> Finding:
    """The share of failed requests at most `limit` (the pre-deploy rate, when known, is shown beside it)."""
    if not result.requests:
        return Finding(result.origin, False, "no request was sent")
    before = f"; {percent(baseline)} before the deploy" if baseline is not None else ""
    failed = f": {result.failure_summary()}" if result.failures else ""
    return Finding(result.origin, result.error_rate <= limit,
                   f"{len(result.failures)} of {result.requests} requests failed, error rate "
                   f"{percent(result.error_rate)} (limit {limit * 100:g}%){before}{failed}")


def memory(usages: list[Usage | Unmeasured], limit_mb: int) -> list[Finding]:
    """Per host: the service's resident memory, all processes together, at most `limit_mb`."""
    return _per_host(usages, lambda u: (
        u.memory_mb <= limit_mb,
        f"{u.processes} processes hold {u.memory_mb:.1f} MB resident memory ({u.memory_before_mb:.1f} MB "
        f"before the load, {u.memory_after_mb:.1f} MB after); limit {limit_mb} MB"))


def cpu(usages: list[Usage | Unmeasured], limit_percent: float) -> list[Finding]:
    """Per host: the service's CPU during the load at most `limit_percent` (100 = one core busy)."""
    return _per_host(usages, lambda u: (
        u.cpu_percent <= limit_percent,
        f"{u.processes} processes used {u.cpu_percent:.1f}% CPU over the {u.seconds:.2f} s of load "
        f"(100% = one core busy); limit {limit_percent:g}%"))


def _per_host(usages: list[Usage | Unmeasured], judge: Callable[[Usage], tuple[bool, str]]) -> list[Finding]:
    """`judge` on each host measured; a failed finding for each host that could not be."""
    findings = []
    for u in usages:
        ok, detail = (False, f"not measured: {u.reason}") if isinstance(u, Unmeasured) else judge(u)
        findings.append(Finding(f"host {u.host}", ok, f"service {u.service}: {detail}"))
    return findings


def section(env: Environment) -> None:
    """`NotConfigured` when the environment has no performance section."""
    if env.performance is None:
        raise NotConfigured(f"no performance section is configured for {env.name}")


def limit(env: Environment, key: str) -> float:
    """The configured limit `key`; `NotConfigured` (the scenario is skipped, saying why) when none is set."""
    value = getattr(env.performance, key)
    if value is None:
        raise NotConfigured(f"no limit configured: performance.{key} is not set for {env.name} "
                            "(measured, not judged: see the load's evidence)")
    return value


def latency_of_run(env: Environment, result: LoadResult, context: RunContext) -> list[Finding]:
    """p95 under load against the baseline the run measured before it changed anything."""
    if not context.from_run:
        raise NotConfigured("no pre-deploy baseline was given: a deploy measures it before changing anything")
    if context.baseline is None and not context.first_deploy:
        raise NotConfigured("no baseline was measured in this run: a deploy measures the release serving before it "
                            "changes anything, and its rollback compares with that; `invoke rollback` measures none")
    baseline = context.baseline and context.baseline.p95_seconds
    return [latency(result, env.performance.latency_factor, baseline, first_deploy=context.first_deploy)]


def error_rate_of_run(env: Environment, result: LoadResult, context: RunContext) -> list[Finding]:
    return [error_rate(result, env.performance.max_error_rate, context.baseline and context.baseline.error_rate)]

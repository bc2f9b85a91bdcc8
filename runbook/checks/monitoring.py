"""Runbook Steps 4 and 13 against a Prometheus server: it answers (`/-/ready`), the targets it scrapes are up
(`/api/v1/targets`), and it holds the alert rules the environment file asks for (`/api/v1/rules`).

A target that is down or not scraped yet (health `unknown`), or a rule not loaded or evaluated yet, is
asked again until the deadline: a server that has just started or reloaded, or an instance that has just
started, settles within a few scrape intervals.
"""

import time

import requests

from runbook import http
from runbook.checks.probes import request_error
from runbook.config import Environment
from runbook.engine import state
from runbook.findings import Finding, NotConfigured
from runbook.watch import alerts

PAUSE = 0.5
"""Between two questions to a server that has not settled yet."""


class Unanswered(Exception):
    """The server did not answer as a Prometheus server does; the message says how."""


def _get(url: str, path: str, timeout: float) -> dict:
    try:
        response = http.request("GET", f"{url.rstrip('/')}{path}", timeout=timeout)
    except requests.RequestException as e:
        raise Unanswered(f"{url} does not answer: {request_error(e, timeout)}") from None
    if response.status_code != 200:
        raise Unanswered(f"{url}{path} answered {response.status_code} (expected 200): {response.text.strip()[:200]}")
    if path.startswith("/-/"):
        return {}
    try:
        return response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise Unanswered(f"{url}{path} gave an answer that is not Prometheus's") from None


def _settled(ask, deadline: float) -> list[Finding]:
    """`ask()`'s findings once none is pending (a target not scraped, a rule not evaluated yet), or at the deadline."""
    until = time.monotonic() + deadline
    while True:
        findings, pending = ask()
        if not pending or time.monotonic() >= until:
            return findings
        time.sleep(PAUSE)


def active_targets(url: str, timeout: float) -> list[dict]:
    return _get(url, "/api/v1/targets?state=active", timeout)["activeTargets"]


def _target(t: dict) -> Finding:
    where = f"{t['labels'].get('job', '?')} target {t['labels'].get('instance', t.get('scrapeUrl', '?'))}"
    if t["health"] == "up":
        return Finding(where, True, f"up (scraped {t.get('scrapeUrl', '')})")
    reason = t.get("lastError") or ("not scraped yet" if t["health"] == "unknown" else t["health"])
    return Finding(where, False, f"down: {reason}")


def probe(env: Environment, url: str, timeout: float) -> tuple[bool, str]:
    """Step 4: the server is ready and every target it scrapes is up, naming each one that is down. While no
    release is live the app's own targets (`monitoring.app_job`) cannot be up yet: they are listed, not judged.
    A server still starting (not ready, targets not scraped yet) or a target still down is asked again, each
    request bounded by `timeout`, for up to `endpoints.settle_seconds`."""
    excused = env.monitoring.app_job if env.monitoring and _nothing_live(env) else None

    def ask():
        try:
            _get(url, "/-/ready", timeout)
            active = active_targets(url, timeout)
        except Unanswered as e:
            return [Finding("Prometheus", False, str(e))], True
        if not active:  # a server that has just started has not read its targets yet
            return [Finding("Prometheus", False, f"{url} is ready, but scrapes no target")], True
        judged = [t for t in active if t["labels"].get("job") != excused]
        findings = [_target(t) for t in judged]
        return findings, any(not f.ok for f in findings)  # an instance just (re)started is scraped again soon

    findings = _settled(ask, env.endpoints.settle_seconds)
    if [f.subject for f in findings] == ["Prometheus"]:
        return False, findings[0].detail.removeprefix(f"{url} ")
    down = [str(f) for f in findings if not f.ok]
    note = f"; job {excused} not judged: no release is live yet" if excused else ""
    if down:
        return False, f"is ready, but {len(down)} of its {len(findings)} targets are down: {'; '.join(down)}{note}"
    return True, f"is ready, its {len(findings)} targets up{note}"


def _nothing_live(env: Environment) -> bool:
    return state.load(env).live is None


def _monitoring(env: Environment):
    if env.monitoring is None:
        raise NotConfigured(f"no monitoring section is configured for {env.name}")
    return env.monitoring


def scraped(env: Environment, deadline: float) -> list[Finding]:
    """Step 13, monitoring enabled: every target of `monitoring.jobs` (else every active target of the app's
    job, at least one) is scraped by the server and up."""
    m = _monitoring(env)
    wanted = {(job, target) for job, targets in m.jobs.items() for target in targets}

    def ask():
        try:
            found = active_targets(m.url, env.endpoints.timeout)
        except Unanswered as e:
            return [Finding("Prometheus", False, str(e))], True
        by_target = {(t["labels"].get("job"), t["labels"].get("instance")): t for t in found}
        expected = wanted or {key for key in by_target if key[0] == m.app_job}
        if not expected:
            return [Finding(f"job {m.app_job}", False, f"{m.url} scrapes no target of the app's job")], False
        findings = [_target(by_target[key]) if key in by_target
                    else Finding(f"{key[0]} target {key[1]}", False, f"not scraped by {m.url}")
                    for key in sorted(expected)]
        return findings, any(not f.ok for f in findings)  # an instance just started may be scraped soon

    return _settled(ask, deadline)


def rules_loaded(env: Environment, deadline: float) -> list[Finding]:
    """Step 13, alerts configured: each alert rule the environment asks for is loaded, with the expression
    rendered from the environment file, and evaluated without error (`health: ok`)."""
    m = _monitoring(env)
    expected = {rule.alert: rule for rule in alerts.alert_rules(env)}
    if not expected:
        raise NotConfigured(f"monitoring.alerts is empty for {env.name}")

    def ask():
        try:
            groups = _get(m.url, "/api/v1/rules?type=alert", env.endpoints.timeout)["groups"]
        except Unanswered as e:
            return [Finding("Prometheus", False, str(e))], True
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        findings = [_rule(name, rule, loaded.get(name)) for name, rule in expected.items()]
        return findings, any(not f.ok for f in findings)

    return _settled(ask, deadline)


def _rule(name: str, rule: alerts.Rule, loaded: dict | None) -> Finding:
    subject = f"alert {name}"
    if loaded is None:
        return Finding(subject, False, "is not loaded")
    if loaded["query"] != rule.expr:
        return Finding(subject, False, f"is loaded as {loaded['query']!r}, not as the environment file gives it: "
                                       f"{rule.expr!r}")
    if loaded.get("health") != "ok":
        return Finding(subject, False, f"health {loaded.get('health')!r}: {loaded.get('lastError') or 'not evaluated yet'}")
    return Finding(subject, True, f"loaded and healthy ({loaded.get('state')}): {rule.expr}")

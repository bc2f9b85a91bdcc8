"""`invoke status`: what an environment runs now and what happened to it last, from the environment
itself (its links, its database, its lock and state files), so every operator's machine sees the same.
"""

from runbook import config, local
from runbook.database import queries
from runbook.engine import lock, state
from runbook.release import releases
from runbook.engine.pipeline import deploy_sequence, rollback_sequence


def collect(env_arg: str) -> dict:
    """Current and previous releases, schema version, lock, the last run, and a run that did not finish."""
    env = config.load_environment(env_arg)
    if env.local is not None:
        local.up(env)
    config.resolve_secrets(env)
    found = state.load(env)
    earlier = found.history[:-1]
    crashed = found.in_progress
    return {
        "environment": env.name,
        "current": {h.name: releases.current(env, h) for h in env.hosts_with("app")},
        "live": found.live and {"release": found.live.release, "version": found.live.version, "run_id": found.live.run_id},
        "previous": earlier[-1].release if earlier else None,
        "schema_version": queries.schema_version(env),
        "lock": lock.describe(env),
        "last_run": found.last_run,
        "unfinished_run": crashed and {
            "run_id": crashed.run_id, "kind": crashed.kind, "version": crashed.version, "phase": crashed.phase,
            "phases": [p.name for p in (deploy_sequence if crashed.kind == "deploy" else rollback_sequence)(env)],
            "since": crashed.started, "operator": crashed.operator,
        },
    }


def text(found: dict) -> str:
    """The status for people, one fact a line."""
    live, last, crashed = found["live"], found["last_run"], found["unfinished_run"]
    lines = [
        f"environment: {found['environment']}",
        "current:     " + ", ".join(f"{h}: {r or 'none'}" for h, r in found["current"].items()),
        f"live:        {live['release'] + ' (' + live['version'] + ')' if live else 'none'}",
        f"previous:    {found['previous'] or 'none'}",
        f"schema:      {found['schema_version'] or 'none'}",
        f"lock:        {found['lock']}",
        f"last run:    {last['kind'] + ' ' + str(last['version'] or '') + ': ' + last['outcome'] + ' (' + last['run_id'] + ')' if last else 'none'}",
    ]
    if crashed:
        what = f"{crashed['kind']} {crashed['version'] or ''}".strip()
        lines.append(f"UNFINISHED:  {what} run {crashed['run_id']} stopped during '{crashed['phase']}' "
                     f"(phases: {' > '.join(crashed['phases'])}); "
                     f"bring it back with: invoke rollback --env {found['environment']} --break-lock")
    return "\n".join(lines)

"""What a killed run left to undo, decided from the facts on the hosts (never from a state file alone):
where `current` points on each app host, the database's schema version, which services run."""

from dataclasses import dataclass

from runbook.config import Environment
from runbook.database import queries
from runbook.hosts import connection
from runbook.release import releases, services


@dataclass(frozen=True)
class Facts:
    current: dict[str, str | None]
    """The release `current` points at on each app host."""
    schema: str | None
    running: dict[str, bool]
    """Whether each service runs, by `host/service`."""

    def __str__(self) -> str:
        current = ", ".join(f"{h}: {r or 'none'}" for h, r in self.current.items())
        running = ", ".join(f"{k} {'running' if ok else 'stopped'}" for k, ok in self.running.items())
        return f"current {current}; schema {self.schema or 'none'}; services {running or 'none'}"


def read_facts(env: Environment) -> Facts:
    app_hosts = env.hosts_with("app")
    current = dict(zip((h.name for h in app_hosts), connection.each(app_hosts, lambda h: releases.current(env, h))))
    placed = services.placements(env)
    running = connection.each(placed, lambda pair: services.running(env, *pair).ok)
    return Facts(current, queries.schema_version(env), {f"{h.name}/{s.name}": ok for (h, s), ok in zip(placed, running)})


@dataclass(frozen=True)
class Undo:
    """What recovery does: switch back, revert the schema, start the services; nothing when all is false."""

    switch: bool
    revert_schema: bool
    start: bool
    facts: Facts

    @property
    def anything(self) -> bool:
        return self.switch or self.revert_schema or self.start

    @property
    def changes(self) -> bool:
        """The app must stop: its release or its schema changes."""
        return self.switch or self.revert_schema


def decide(facts: Facts, target: str | None, target_schema: str | None) -> Undo:
    """What returns the environment to `target` on `target_schema`, with its services running."""
    return Undo(switch=any(r != target for r in facts.current.values()),
                revert_schema=facts.schema != target_schema,
                start=target is not None and not all(facts.running.values()),
                facts=facts)


def describe(undo: Undo, target: str | None, target_schema: str | None) -> str:
    """The decision in one sentence, stated before acting."""
    goal = f"{target or 'no release'} on schema {target_schema or 'none'}"
    if not undo.anything:
        return f"{undo.facts}: already {goal} with its services running; nothing to undo"
    steps = [what for what, needed in (("switch current back", undo.switch),
                                       ("revert the schema", undo.revert_schema),
                                       ("start the services", undo.start or undo.changes)) if needed]
    return f"{undo.facts}: to return to {goal}: {', '.join(steps)}"

"""How long anything a run waits for may take: commands on hosts (by kind), a verifying phase's checks,
file transfers and database statements. Every wait has one; a phase may have its own.

    deadlines:
      command: 120        # any command on a host without a deadline of its own
      backup: 3600        # pg_dump, pg_restore
      migrate: 900        # the app's migration commands
      services: 120       # starting, stopping, reloading a service
      drain: 120          # a load balancer's drained server to end its sessions, a returned one to be UP
      phases: {stop: 300} # a phase's commands without a kind (or, for a verifying phase, its checks)
      browser: 30         # a page's load or a form's answer in the user interface checks
"""

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from runbook.config.base import Model

Seconds = Annotated[int, Field(ge=1, le=86_400)]
Kind = Literal["backup", "migrate", "services"]
"""The kinds of host commands with a deadline of their own."""

PHASES = frozenset({
    "announce", "backup", "bake", "baseline", "configure", "database", "drain", "finish", "health", "hosts",
    "indexes", "lock", "migrate", "monitoring", "performance", "plan", "prepare", "preflight", "reload", "restore",
    "rotate", "start", "stop", "switch", "switch-back", "verification", "verify-deploy", "verify-rollback",
})
"""The phases of the deploy and rollback sequences (`runbook/engine/sequences.py`; a test keeps both alike)."""


class Deadlines(Model):
    command: Seconds = 120
    backup: Seconds = 3600
    migrate: Seconds = 900
    services: Seconds = 120
    checks: Seconds = 1800
    """A verifying phase's checks (its child pytest), whole."""
    transfer: Seconds = 900
    """A file copied to a host (rsync of a package), whole."""
    statement: Seconds = 300
    """A statement of the runbook's own database sessions (`statement_timeout`)."""
    browser: Seconds = 30
    """Anything the user interface checks wait for in Chromium: its start, a page's load, a form's answer."""
    lock: Seconds = 30
    """Waiting for a table lock another session holds (`lock_timeout`): the runbook's sessions, pg_dump, the
    migrations."""
    drain: Seconds = 120
    """A load balancer's drained server to end its sessions, and a returned one to be seen UP again."""
    phases: dict[str, Seconds] = {}

    @field_validator("phases")
    @classmethod
    def _known_phases(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - PHASES)
        if unknown:
            raise ValueError(f"no phase is named {', '.join(map(repr, unknown))}; phases: {', '.join(sorted(PHASES))}")
        return value

    def _phase(self, phase: str | None) -> str | None:
        """The phase's key in `phases`: its name, or that of the phase it is a batch of (`stop-2`: `stop`)."""
        if phase is None:
            return None
        base = re.sub(r"-\d+$", "", phase)
        return phase if phase in self.phases else base if base in self.phases else None

    def for_command(self, kind: Kind | None, phase: str | None) -> tuple[str, int]:
        """The deadline of a host command and its name: its kind's, else its phase's, else `command`."""
        if kind is not None:
            return kind, getattr(self, kind)
        key = self._phase(phase)
        return (f"phases.{key}", self.phases[key]) if key else ("command", self.command)

    def for_checks(self, phase: str) -> tuple[str, int]:
        """The deadline of a verifying phase's checks and its name: the phase's own, else `checks`."""
        key = self._phase(phase)
        return (f"phases.{key}", self.phases[key]) if key else ("checks", self.checks)

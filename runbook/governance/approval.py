"""Prerequisites and Step 6: an approved change, deployed inside a maintenance window and outside a
freeze. What is missing is a refusal (exit 2) before anything runs; an emergency deploy may go
outside the windows and through a freeze, but only with a reason, which the record shows prominently.
"""

import re
from dataclasses import asdict, dataclass
from datetime import datetime

from runbook.config import Environment
from runbook.errors import RunbookError

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class Approval:
    change: str | None
    approved_by: str | None
    emergency: bool
    reason: str | None
    window: str

    def as_record(self) -> dict:
        return asdict(self)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def open_window(env: Environment, now: datetime) -> str | None:
    """The window `now` (UTC) falls in, described; None when outside every window. No windows: always."""
    if not env.approval.windows:
        return "no maintenance windows configured: any time"
    minute, day = now.hour * 60 + now.minute, DAYS[now.weekday()]
    for window in env.approval.windows:
        if day in window.days and _minutes(window.start) <= minute < _minutes(window.end):
            return f"{'/'.join(window.days)} {window.start}-{window.end} UTC"
    return None


def check(env: Environment, operator: str, now: datetime, change: str | None = None, approved_by: str | None = None,
          emergency: bool = False, reason: str | None = None) -> Approval:
    """The approval this deploy runs under, or `RunbookError` (exit 2) naming what is missing."""
    rules = env.approval
    if emergency and not (reason and reason.strip()):
        raise RunbookError("an emergency deploy needs --reason: say why it cannot wait")
    if rules.change_ticket:
        if not change:
            raise RunbookError(f"{env.name} requires a change ticket: give --change (e.g. CHG-123)")
        if not re.fullmatch(rules.ticket_pattern, change):
            raise RunbookError(f"change ticket {change!r} does not match {rules.ticket_pattern}")
        if not approved_by:
            raise RunbookError(f"{env.name} requires an approver: give --approved-by NAME")
    if approved_by and approved_by.strip().lower() == operator.strip().lower():
        raise RunbookError(f"self-approval refused: the approver {approved_by!r} is the operator running the deploy")
    for freeze in rules.freezes:
        if freeze.start <= now < freeze.end and not emergency:
            raise RunbookError(f"{env.name} is frozen until {freeze.end:%Y-%m-%d %H:%M} UTC ({freeze.reason}); "
                               "only an --emergency deploy with a --reason may go ahead")
    window = open_window(env, now)
    if window is None and not emergency:
        allowed = "; ".join(f"{'/'.join(w.days)} {w.start}-{w.end} UTC" for w in rules.windows)
        raise RunbookError(f"{now:%a %H:%M} UTC is outside {env.name}'s maintenance windows ({allowed})")
    return Approval(change, approved_by, emergency, reason, window or "outside every window (emergency)")

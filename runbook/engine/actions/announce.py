"""Step 6: telling the environment's notification targets what happens, from start to end."""

from runbook.engine.deployment import Deployment
from runbook.errors import ActionFailed
from runbook.governance import notify
from runbook.release import releases


def tell(d: Deployment, event: str, reason: str = "") -> list:
    """Tell the environment's notification targets; every delivery, good or bad, goes in the record."""
    run = d.run
    message = notify.compose(event, run.env.name, run.version or (d.target and releases.version_of(d.target)) or "",
                             run.id, run.operator, reason, link=str(run.folder / "index.html"))
    deliveries = notify.send(run.env, message)
    run.facts.setdefault("notifications", []).extend(x.as_record() for x in deliveries)
    return deliveries


def announce(d: Deployment) -> list[str]:
    """Notify stakeholders and status pages that maintenance begins; a required target that cannot be
    told stops the deploy before anything changes."""
    deliveries = tell(d, "started")
    failures = notify.required_failures(deliveries, d.env)
    if failures:
        raise ActionFailed("; ".join(failures))
    return [str(x) for x in deliveries] or ["no notification target is configured"]

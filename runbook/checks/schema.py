"""Step 3's migration review: the migrations a package will apply, their down parts, and whether they
are safe while the previous release still serves."""

from dataclasses import dataclass

from runbook.config import Environment
from runbook.database import migrations, queries
from runbook.findings import Finding, passed_with
from runbook.release import rollout
from runbook.release.package import Contents


@dataclass(frozen=True)
class Pending:
    migrations: list[migrations.Migration]
    in_package: int

    @property
    def title(self) -> str:
        return f"pending migrations ({len(self.migrations)} of {self.in_package} in the package)"

    @property
    def listing(self) -> str:
        return "\n".join(m.label for m in self.migrations) or "none: the database has every migration of the package"


def pending(env: Environment, contents: Contents) -> Pending:
    found = migrations.in_package(contents.files, env.app.migrations.dir)
    return Pending(migrations.pending(found, queries.applied_versions(env)), len(found))


def reversible(pending_: Pending) -> list[Finding]:
    """Every pending migration has a down part."""
    return [
        Finding(f"migration {m.label}", bool(m.down),
                "has a down part" if m.down else "has no down part: it cannot be rolled back")
        for m in pending_.migrations
    ] or passed_with("migrations", "no pending migration")


def undoable(pending_: Pending) -> list[Finding]:
    """Every pending migration is undone whole when it fails: nothing in it ends its own transaction or
    runs outside one, unless declared so with a down part."""
    return [
        Finding(f"migration {m.label}", not why, "; ".join(why) or "runs in one transaction")
        for m in pending_.migrations for why in [migrations.cannot_be_undone(m)]
    ] or passed_with("migrations", "no pending migration")


def backward_compatible(env: Environment, pending_: Pending) -> list[Finding]:
    """Every pending migration only adds to the schema, where the previous release serves on it."""
    if not rollout.previous_release_meets_new_schema(env):
        return passed_with("migrations", "not required: every app host is stopped before the migrations run")
    return [
        Finding(f"migration {m.label}", not hazards, "; ".join(hazards) or "only adds to the schema")
        for m in pending_.migrations for hazards in [migrations.rolling_hazards(m)]
    ] or passed_with("migrations", "no pending migration")

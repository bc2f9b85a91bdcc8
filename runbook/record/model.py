"""`record.json` as a typed model: `Record`, one run of the runbook, and `PhaseRecord`, one of its phases.

`schemas/record.schema.json` is generated from it; after changing the model, regenerate it with

    python -m runbook.record.model > schemas/record.schema.json

A record keeps the keys it was given, no more: a fact the run did not gather is absent, not null.
The facts' parts are in `runbook.record.facts` and `runbook.record.watching`.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from runbook.record.facts import (Approval, Backup, CrashedRun, DatabaseRestored, Delivery, Host, Incident,
                                  Migrations, Package, Part, Rollback, RollbackPlan, Signing, Switch, TableRows)
from runbook.record.watching import Bake, Baseline
from runbook.times import STAMP_PATTERN

Stamp = Annotated[str, Field(pattern=STAMP_PATTERN)]
"""A UTC time to the second, e.g. `2026-11-28T09:30:00Z`."""
Seconds = Annotated[float, Field(ge=0)]
DUMP: dict[str, Any] = {"by_alias": True, "exclude_unset": True}
"""How a record is written: with its own key names, and only the keys it was given."""


class Step(Part):
    """One Gherkin step of a scenario."""

    keyword: str
    """Given, When, Then, And."""
    text: str
    """The step as the feature file says it."""
    status: Literal["passed", "failed", "not run", "skipped", "attested"]
    """attested: a person's statement rather than a machine's check."""
    duration: float
    """Seconds the step took."""
    message: str
    """Why it failed, or what was attested (redacted)."""
    evidence: list[dict[str, Any]]
    """What the step showed as proof: text (command output, diffs) or findings, redacted."""


class Scenario(Part):
    """One verifying scenario and the outcome of each of its steps."""

    nodeid: str
    """The scenario's pytest node id."""
    feature: str
    """The feature the scenario belongs to."""
    scenario: str
    """The scenario's name."""
    tags: list[str]
    """Its Gherkin tags; `advisory` ones warn rather than block."""
    outcome: Literal["passed", "attested", "waived", "not applicable", "skipped", "failed"]
    """waived: failed, but a waiver in force allows the release; not applicable: declared so in the
    environment file, with a reason (the message), and not run; skipped: it could not run (the message
    says why). Only passed, attested, waived and not applicable count toward success."""
    duration: float
    """Seconds the scenario took."""
    message: str
    """Why it failed or was waived (redacted); empty when it passed."""
    steps: list[Step]
    """Its steps, in order."""


class PhaseRecord(Part):
    """One phase of the run: what it did or verified, on what evidence, and how it ended."""

    name: str
    """The phase's name, e.g. `migrate` or `stop-2` (batch 2 of a rollout)."""
    title: str
    """What the phase is, with the runbook steps it carries out."""
    sequence: Literal["gate", "deploy", "rollback", "backup", "watch"]
    """The sequence it belongs to."""
    outcome: Literal["passed", "failed", "error", "skipped", "not run"]
    """error: its checks could not run; skipped: it did not apply (the evidence says why); not run: an
    earlier phase failed (its error says which)."""
    started: Stamp
    """When it started (UTC)."""
    finished: Stamp
    """When it ended (UTC)."""
    duration_seconds: Seconds
    """How long it took."""
    report: str
    """Its HTML report in the run folder."""
    junit: str | None
    """Its JUnit XML in the run folder; null for a phase without scenarios."""
    error: str
    """Why it failed or could not run (redacted); empty otherwise."""
    evidence: list[str]
    """What an action phase did, line by line (redacted)."""
    blocking_failures: list[str]
    """The failed scenarios that block the release."""
    warnings: list[str]
    """The failed advisory scenarios and the waived ones: reported, not blocking."""
    scenarios: list[Scenario]
    """A verifying phase's scenarios; empty for an action phase."""


def _schema_extra(schema: dict[str, Any]) -> None:
    """The schema's dialect and id; and since a fact the run did not gather is absent rather than null,
    each optional property allows its value alone."""
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://runbook.example/schemas/record.schema.json"})
    for name, field in schema["properties"].items():
        if name not in schema["required"]:
            del field["default"]
            field.update(*(kind for kind in field.pop("anyOf") if kind != {"type": "null"}))


class Record(Part):
    """One run of the runbook (preflight, deploy, rollback, backup or watch): who ran what, where, when,
    with whose approval, on what evidence, and what happened. Times are UTC, ISO 8601 with a Z."""

    model_config = ConfigDict(title="Runbook run record (record.json)", json_schema_extra=_schema_extra)

    run_id: str
    """`<UTC start>-<environment>-<kind>-<random>`, also the run folder's name."""
    kind: Literal["preflight", "deploy", "rollback", "backup", "watch"]
    """What was run."""
    environment: str
    """The environment's name."""
    environment_file: str
    """The environment file the run read."""
    hosts: list[Host]
    """The environment's hosts."""
    version: str | None
    """The version deployed; null for a rollback or a run without one."""
    operator: str
    """Who ran it."""
    runner: str
    """The machine and process that ran it."""
    git_commit: str
    """The runbook's own commit."""
    started: Stamp
    """When the run started (UTC)."""
    finished: Stamp
    """When it ended (UTC)."""
    duration_seconds: Seconds
    """How long it took."""
    outcome: Literal["passed", "failed", "refused", "needs a human"]
    """failed: nothing changed, or the previous release serves again; needs a human: the rollback failed too."""
    exit_code: Literal[0, 1, 2, 3]
    """The exit code: 0 passed, 1 failed, 2 refused, 3 needs a human."""
    approval: Approval | None = None
    """The approval a deploy ran under."""
    crashed_run: CrashedRun | None = None
    """A run found on the environment that had stopped without finishing."""
    notifications: list[Delivery] | None = None
    """Every notification sent, delivered or not."""
    baseline: Baseline | None = None
    """The error rate and p95 latency of the release serving before the deploy."""
    backup: Backup | None = None
    """The backup taken before anything changed."""
    snapshot: dict[str, TableRows] | None = None
    """Each protected table's row count before the deploy (its checksum is in the context file, the rows' digests on the server)."""
    package: Package | None = None
    """The package deployed."""
    configuration_changes: dict[str, str] | None = None
    """Each configuration file's unified diff against the previous release, secrets redacted."""
    switch: Switch | None = None
    """When the release went live, with the database's WAL position."""
    migrations: Migrations | None = None
    """The migrations the deploy applied."""
    bake: Bake | None = None
    """The bake window after the verification."""
    unfinished: str | None = None
    """What did not finish although the release is live (a failed last phase, hosts out of the load balancer)."""
    database_restored: DatabaseRestored | None = None
    """Present when a backup was restored."""
    rollback: Rollback | None = None
    """The rollback, when one ran."""
    rollback_plan: RollbackPlan | None = None
    """What the rollback chose to do to the database and what it cost, stated before it acted."""
    needs_human: str | None = None
    """What state things are in when the rollback failed too, and what to run after fixing the cause."""
    refused: str | None = None
    """Why the run was refused before changing anything."""
    lock_kept: str | None = None
    """A recovery that stopped before acting: the killed run's lock is kept with its intent, and what to run next."""
    signing: Signing | None = None
    """The key that signed the run folder; absent when the environment has no signing key."""
    incident: Incident | None = None
    """The incident record, written for every rollback or failed run."""
    phases: list[PhaseRecord]
    """Every phase, in the order it ran."""
    journal: Literal["journal.jsonl"]
    """The run's journal in the run folder: every event with its UTC time."""

    def data(self) -> dict[str, Any]:
        """The record as `record.json` holds it, as a dictionary."""
        return self.model_dump(mode="json", **DUMP)

    def text(self) -> str:
        """The record as `record.json` holds it."""
        return self.model_dump_json(indent=2, **DUMP)


def schema_text() -> str:
    """`schemas/record.schema.json`: the JSON schema of `Record`."""
    return json.dumps(Record.model_json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")

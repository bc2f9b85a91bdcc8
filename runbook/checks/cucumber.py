"""Cucumber JSON written from the runbook's own step records, so a Cucumber reporter shows what ran.

pytest-bdd's own writer says "passed" for a step that was skipped and "failed" for steps after a
failed one; here each step has the status it had: passed (attested too), failed, or skipped (not
run, skipped), and each scenario carries its outcome when it was not run as written (waived, not
applicable, skipped) as a tag and in its description.
"""

import json
from pathlib import Path

from runbook.checks.evidence import Scenario

STATUS = {"passed": "passed", "attested": "passed", "failed": "failed", "skipped": "skipped", "not run": "skipped"}


def element(record: Scenario, outcome: str, message: str) -> dict:
    """One scenario as a Cucumber element."""
    steps = []
    for step in record.steps:
        result: dict = {"status": STATUS[step.status], "duration": int(step.duration * 1e9)}
        if step.message and step.status != "passed":
            result["error_message"] = step.message
        steps.append({"keyword": step.keyword, "name": step.text, "line": step.line, "match": {"location": ""},
                      "result": result})
    noted = outcome not in ("passed", "attested", "failed")
    return {
        "keyword": "Scenario", "id": f"{record.uri}:{record.line}", "name": record.name, "line": record.line,
        "type": "scenario", "description": f"{outcome}: {message}" if noted else "",
        "tags": [{"name": f"@{t}", "line": record.line} for t in record.tags]
                + ([{"name": "@" + outcome.replace(" ", "-"), "line": record.line}] if noted else []),
        "steps": steps,
    }


def write(path: Path, scenarios: list[tuple[Scenario, dict]]) -> None:
    """Each scenario's element (see `element`) under its feature, in the order they ran."""
    features: dict[str, dict] = {}
    for record, found in scenarios:
        features.setdefault(record.uri, {"keyword": "Feature", "uri": record.uri, "id": record.uri,
                                         "name": record.feature, "line": 1, "description": "", "tags": [],
                                         "elements": []})["elements"].append(found)
    path.write_text(json.dumps(list(features.values()), indent=2))

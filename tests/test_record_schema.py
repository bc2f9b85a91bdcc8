"""`schemas/record.schema.json` is generated from the record's model, and the two never disagree; a record
keeps exactly the keys it was given."""

import json

import jsonschema
import pytest
from pydantic import ValidationError

from runbook import ROOT
from runbook.record.model import Record

COMMITTED = ROOT / "schemas" / "record.schema.json"
REFUSED_ROLLBACK = {
    "run_id": "20260101T020000Z-prod-rollback-a1b2c3", "kind": "rollback", "environment": "prod",
    "environment_file": "environments/prod.yaml", "hosts": [{"name": "web1", "spec": "ssh://web1", "roles": ["app"]}],
    "version": None, "operator": "ops", "runner": "ci (pid 1)", "git_commit": "unknown",
    "started": "2026-01-01T02:00:00Z", "finished": "2026-01-01T02:00:01Z", "duration_seconds": 1.0,
    "outcome": "refused", "exit_code": 2, "refused": "prod has no previous release to roll back to",
    "phases": [], "journal": "journal.jsonl",
}


def test_committed_schema_matches_the_record_model():
    assert json.loads(COMMITTED.read_text()) == Record.model_json_schema(), (
        "schemas/record.schema.json is not the record model's schema: regenerate it with "
        "`python -m runbook.record.model > schemas/record.schema.json`")


def test_a_record_keeps_its_nulls_and_leaves_the_facts_it_lacks_absent():
    record = Record.model_validate(REFUSED_ROLLBACK)
    assert record.data() == json.loads(record.text()) == REFUSED_ROLLBACK
    jsonschema.validate(record.data(), json.loads(COMMITTED.read_text()))


def test_a_fact_the_record_does_not_define_is_refused():
    with pytest.raises(ValidationError, match="watch"):
        Record.model_validate(REFUSED_ROLLBACK | {"watch": {}})

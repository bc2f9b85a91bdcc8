"""Approvals, maintenance windows and freezes: what is missing is a refusal before anything runs."""

from datetime import datetime, timezone

import pytest

from runbook.governance import approval
from runbook import config
from runbook.errors import RunbookError

SATURDAY_3AM = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
RULES = {"approval": {
    "change_ticket": True,
    "windows": [{"days": ["sat", "sun"], "start": "02:00", "end": "06:00"}],
    "freezes": [{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "reason": "year-end freeze"}],
}}


@pytest.fixture
def env(make_env):
    return config.load_environment(str(make_env(RULES)))


def refusal(env, when, **kwargs) -> str:
    with pytest.raises(RunbookError) as error:
        approval.check(env, "alice", when, **kwargs)
    assert error.value.exit_code == 2
    return str(error.value)


def test_approved_change_inside_a_window_is_recorded(env):
    found = approval.check(env, "alice", SATURDAY_3AM, change="CHG-123", approved_by="bob")
    assert found.as_record() == {"change": "CHG-123", "approved_by": "bob", "emergency": False, "reason": None,
                                 "window": "sat/sun 02:00-06:00 UTC"}


def test_missing_change_ticket_is_refused(env):
    assert "requires a change ticket" in refusal(env, SATURDAY_3AM, approved_by="bob")


def test_missing_approver_is_refused(env):
    assert "requires an approver" in refusal(env, SATURDAY_3AM, change="CHG-123")


def test_malformed_ticket_is_refused(env):
    assert "does not match" in refusal(env, SATURDAY_3AM, change="please", approved_by="bob")


def test_self_approval_is_refused(env):
    assert "self-approval refused" in refusal(env, SATURDAY_3AM, change="CHG-123", approved_by="Alice")


def test_deploy_outside_the_windows_is_refused(env):
    assert "outside test's maintenance windows" in refusal(env, MONDAY_NOON, change="CHG-1", approved_by="bob")


def test_deploy_in_a_freeze_is_refused_even_inside_a_window(env):
    in_freeze = datetime(2026, 12, 26, 3, 0, tzinfo=timezone.utc)
    assert "frozen until 2027-01-04" in refusal(env, in_freeze, change="CHG-1", approved_by="bob")


def test_emergency_needs_a_reason(env):
    assert "needs --reason" in refusal(env, MONDAY_NOON, change="CHG-1", approved_by="bob", emergency=True)


def test_emergency_with_a_reason_goes_ahead_outside_windows_and_freezes(env):
    in_freeze = datetime(2026, 12, 26, 12, 0, tzinfo=timezone.utc)
    found = approval.check(env, "alice", in_freeze, change="CHG-9", approved_by="bob", emergency=True,
                           reason="payments down")
    assert found.emergency and found.reason == "payments down"


def test_refused_deploy_changes_nothing_and_its_record_says_why(make_env, invoke, build):
    build("1.0.0")
    env_file = make_env(RULES)
    result = invoke("deploy", "--env", str(env_file), "--version", "1.0.0", "--change", "CHG-1",
                    "--approved-by", "bob", extra_env={"RUNBOOK_OPERATOR": "bob"})
    assert result.code == 2, result.output
    assert "self-approval refused" in result.output
    assert result.record["outcome"] == "refused" and "self-approval refused" in result.record["refused"]
    assert result.record["phases"] == []
    assert not (env_file.parent / "app" / "releases").exists() or not any((env_file.parent / "app" / "releases").iterdir())

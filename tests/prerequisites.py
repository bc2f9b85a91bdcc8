"""A test's missing prerequisite: a skip naming it on a developer's machine, a failure under `CI=true`,
where a skip would hide a capability that was never tested."""

import os

import pytest


def require(missing: str | None) -> None:
    """`missing`: what the machine lacks (None: nothing)."""
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"a prerequisite is missing under CI=true: {missing}")
    pytest.skip(missing)

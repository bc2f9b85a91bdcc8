"""Under CI=true a missing prerequisite fails the test that needs it, naming it; elsewhere it skips."""

import os
import subprocess
import sys

import pytest

from runbook import ROOT

NEEDS = "from tests import prerequisites\n\ndef test_needs_sshd():\n    prerequisites.require('no sshd here')\n"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_prerequisite_fails_under_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    (tmp_path / "test_needs.py").write_text(NEEDS)
    result = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_needs.py"), "-rs", "-p",
                             "no:cacheprovider", "--rootdir", str(tmp_path)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=os.environ | {"CI": ci, "PYTHONPATH": str(ROOT)})
    assert outcome in result.stdout and "no sshd here" in result.stdout, result.stdout

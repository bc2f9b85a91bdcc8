"""Who runs the runbook and at which commit of it: what every run's record and every phase's report name.

Apart from `runbook.engine.run` so that the checking process's sessions, which name them too, import
neither the engine nor what it draws in.
"""

import getpass
import os
import subprocess

from runbook import ROOT


def operator() -> str:
    """Who runs this: `$RUNBOOK_OPERATOR`, else the login name."""
    return os.environ.get("RUNBOOK_OPERATOR") or getpass.getuser()


def git_commit() -> str:
    """The runbook's own commit, or `unknown` when git cannot tell."""
    try:
        result = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"

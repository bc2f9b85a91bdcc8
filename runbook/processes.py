"""Processes on this machine: whether one still runs. Imported by the checker before anything heavy, so it
imports nothing of the runbook's own."""

import os


def alive(pid: int) -> bool:
    """Whether process `pid` exists here (one of another user's, which signal 0 may not reach, counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

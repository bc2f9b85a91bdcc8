"""A real SIGTERM that comes between phases is not lost and never escapes as a traceback: the next
phase fails with it. Run in a child process, since the handler also stops the process's children."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal
    from runbook.engine import signals

    with signals.as_failures():
        os.kill(os.getpid(), signal.SIGTERM)  # between phases: nothing may be raised here
        print("between phases: not raised")
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal is ignored
        try:
            with signals.in_phase():
                print("the next phase ran its body")
        except signals.Interrupted as e:
            print(f"the next phase failed: {e}")
        with signals.in_phase():
            print("the phase after it runs")
""")


def test_a_sigterm_between_phases_fails_the_next_phase_once():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("runbook: SIGTERM received")]
    assert lines == ["between phases: not raised", "the next phase failed: interrupted by SIGTERM",
                     "the phase after it runs"]

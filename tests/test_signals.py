"""A real SIGTERM is never lost and never escapes as a traceback: one that comes between phases fails the
next phase; one that comes in a phase fails it, even where code the phase runs swallows what it raises. Run
in a child process, since the handler also stops the process's children."""

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


SWALLOWED = textwrap.dedent("""
    import os, signal
    from runbook.engine import signals

    with signals.as_failures():
        try:
            with signals.in_phase():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                except BaseException as e:  # as code a phase runs may: the phase's body goes on to its end
                    print(f"swallowed: {e}")
                print("the body ended")
        except signals.Interrupted as e:
            print(f"the phase failed: {e}")
        with signals.in_phase():
            print("the phase after it runs")
""")


def lines_of(script: str) -> list[str]:
    """What `script` printed in a child process, but for the handler's own message."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith("runbook: SIGTERM received")]


def test_a_sigterm_between_phases_fails_the_next_phase_once():
    assert lines_of(SCRIPT) == ["between phases: not raised", "the next phase failed: interrupted by SIGTERM",
                                "the phase after it runs"]


def test_a_sigterm_in_a_phase_whose_code_swallows_it_still_fails_that_phase_once():
    assert lines_of(SWALLOWED) == ["swallowed: interrupted by SIGTERM", "the body ended",
                                   "the phase failed: interrupted by SIGTERM", "the phase after it runs"]

"""Work a run will need later, done in a thread of its own while the run only waits for a verifying phase's
checks (they run in the checking process), so that it is off the run's way: compiling the record's page
templates for the run's end (0.07 s), importing pyplot for the bake's chart (about a second).

Never while a watch window samples: the GIL the thread holds would delay the prober's timing of the app's
answers. A window first waits for the thread (`settle`), and pyplot, the long one, is warmed only where
the next window is the bake (`sequences.waits_before_bake`), so that the baseline never waits for it.
"""

import contextlib
import threading
from collections.abc import Callable

SETTLE_SECONDS = 60
"""How long a window waits for the work under way; past it the window starts anyway (it is only timing)."""

_started: dict[str, threading.Thread] = {}


def ahead(name: str, job: Callable[[], object]) -> None:
    """Run `job` in a thread of its own, once per process (by `name`). What it raises is dropped: the
    work is done again where it is needed, and fails there with its own error."""
    if name not in _started:
        _started[name] = threading.Thread(target=_quietly, args=(job,), name=f"warm {name}", daemon=True)
        _started[name].start()


def _quietly(job: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        job()


def settle() -> None:
    """Wait for the work started ahead to end, at most `SETTLE_SECONDS` in all."""
    for thread in list(_started.values()):
        thread.join(SETTLE_SECONDS)

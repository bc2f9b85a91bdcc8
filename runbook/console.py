"""What the terminal shows while a run goes (issue 17, item 6), chosen once per run by `use`:

- `Plain` (pipes, CI logs): one line per finished phase, with its verdict, cause and time, and the run's
  messages; no live counter.
- `Rich` (stdout is a terminal): the same lines, under a live line naming the running phase, its elapsed
  seconds and its counter (backup bytes, bake samples left).
- `Json` (`--json`): one JSON object a line for each event of the run's journal, each counter and each
  message; nothing else on stdout.

A verifying phase's own pytest output is shown only with `--verbose`. Everything written passes through
the redactor.
"""

import contextvars
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.text import Text

from runbook.secrets import redact
from runbook.times import stamp_ms, utc_now

MIN_EVERY = 0.2
"""Seconds between two measurements of a counter, at least: a counter must not load the host it measures."""
STOP_WAIT = 15.0
"""Seconds the end of a phase waits for its counter's measurement under way; each measurement is bounded
well within it (e.g. `database.commands.size`), so the thread ends with its phase."""
STYLES = {"passed": "green", "skipped": "dim", "failed": "bold red", "error": "bold red", "not run": "yellow"}


class Running:
    """The phase running now: its live line."""

    def __init__(self, sequence: str, phase: str, title: str) -> None:
        self.sequence, self.phase, self.title = sequence, phase, title
        self.started = time.monotonic()
        self.counter = ""

    def __rich__(self) -> Text:
        """Rendered again at every refresh of the live line, so the seconds go on counting."""
        line = f"[{self.sequence}] {self.title}  {time.monotonic() - self.started:.0f} s"
        return Text(redact(line + (f"  {self.counter}" if self.counter else "")))


class Plain:
    """Plain lines, for pipes and CI logs. The other variants change how each thing is shown."""

    live = False
    """Whether counters are shown: a counter is measured only then."""

    def __init__(self, verbose: bool = False, out: IO[str] | None = None) -> None:
        self.verbose = verbose
        self.out = out
        """None: `sys.stdout` as it is when a line is written."""
        self.running: Running | None = None
        self._lock = threading.RLock()  # reentrant: a signal handler may write while its thread holds it

    def _write(self, text: str) -> None:
        stream = self.out or sys.stdout
        with self._lock:
            stream.write(redact(text) + "\n")
            stream.flush()

    def phase_started(self, sequence: str, phase: str, title: str) -> None:
        self.running = Running(sequence, phase, title)

    def phase_finished(self, text: str, outcome: str, seconds: float) -> None:
        """`text`: the phase's summary, its verdict on the last line, which gets the phase's time."""
        self.running = None
        self._write(finished(text, seconds))

    def say(self, text: str) -> None:
        """A message of the run: "rolling back: ...", "A HUMAN IS NEEDED: ...", "record: ..."."""
        self._write(text)

    def output(self, text: str) -> None:
        """A line of a verifying phase's own pytest output: shown only when verbose."""
        if self.verbose:
            self._write(text)

    def event(self, name: str, /, **fields) -> None:
        """An event of the run's journal: only `Json` shows it."""

    def count(self, text: str) -> None:
        """The running phase's counter is now `text`."""
        if self.running is not None:
            self.running.counter = text

    @contextmanager
    def counting(self, measure: Callable[[], str | None], every: float) -> Iterator[None]:
        """While the block runs, the running phase's counter is `measure()`, measured every `every`
        seconds (at least `MIN_EVERY`) in a thread of its own, in the caller's context (its phase's
        deadlines), and only where counters are shown. A measurement that fails or gives None changes
        nothing. At the block's end the thread is stopped and waited for (`STOP_WAIT` at most)."""
        if not self.live:
            yield
            return
        stop = threading.Event()

        def refresh() -> None:
            while not stop.wait(max(every, MIN_EVERY)):
                try:
                    text = measure()
                except Exception:  # a counter is a courtesy: its failure is not the phase's
                    continue
                if text is not None and not stop.is_set():
                    self.count(text)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(refresh,), name="runbook-counter",
                                  daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(STOP_WAIT)


class Rich(Plain):
    """On a terminal: the running phase on a live status line, and a permanent line per finished phase."""

    live = True

    def __init__(self, verbose: bool = False, console: Console | None = None) -> None:
        super().__init__(verbose)
        self.console = console or Console(highlight=False)
        self._status = None

    def _write(self, text: str, style: str = "") -> None:
        with self._lock:
            self.console.print(Text(redact(text), style=style), soft_wrap=True)  # Text: "[deploy] ..." is no markup

    def phase_started(self, sequence: str, phase: str, title: str) -> None:
        self._stop()
        super().phase_started(sequence, phase, title)
        self._status = self.console.status(self.running)
        self._status.start()

    def phase_finished(self, text: str, outcome: str, seconds: float) -> None:
        self._stop()
        self.running = None
        self._write(finished(text, seconds), STYLES.get(outcome, ""))

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class Json(Plain):
    """One JSON object a line: the journal's events (phase started, phase finished with its outcome,
    error and seconds, ...), counters and messages, each with its time."""

    live = True

    def _event(self, name: str, /, **fields) -> None:
        self._write(json.dumps({"at": fields.pop("at", None) or stamp_ms(utc_now()), "event": name, **fields}))

    def phase_finished(self, text: str, outcome: str, seconds: float) -> None:
        self.running = None  # the journal's "phase finished" event says it

    def say(self, text: str) -> None:
        self._event("message", text=text)

    def output(self, text: str) -> None:
        if self.verbose:
            self._event("output", phase=self.running.phase if self.running else None, text=text)

    def event(self, name: str, /, **fields) -> None:
        self._event(name, **fields)

    def count(self, text: str) -> None:
        running = self.running
        if running is not None and text != running.counter:
            running.counter = text
            self._event("counter", sequence=running.sequence, phase=running.phase, text=text)


def finished(text: str, seconds: float) -> str:
    """A finished phase's summary with its time after the verdict: "... (12 passed) in 3.4 s"."""
    return f"{text} in {seconds:.1f} s"


_current: Plain = Plain()


def use(json_: bool = False, verbose: bool = False) -> Plain:
    """Choose what this run's terminal shows: JSON lines, a live line on a terminal, else plain lines."""
    global _current
    _current = Json(verbose) if json_ else Rich(verbose) if sys.stdout.isatty() else Plain(verbose)
    return _current


def current() -> Plain:
    """The variant `use` chose (plain lines, not verbose, until it is called)."""
    return _current

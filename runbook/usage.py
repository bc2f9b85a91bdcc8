"""invoke's usage errors exit 2, as the exit-code contract says (invoke's own `Program.run` exits 1).

invoke loads the tasks file before it parses the task's arguments, so the tasks file can make a
missing or unknown option, a missing argument or an unknown task a refusal. invoke's own core flags
(`invoke --nosuch`) are parsed before any tasks file loads and keep invoke's exit 1.
"""

import functools

from invoke import Exit, ParseError
from invoke.program import Program

from runbook.errors import REFUSED


def exit_2_on_usage_errors() -> None:
    """Make the running invoke turn a task's usage error into a message and exit 2. Idempotent."""
    parse = Program.parse_tasks
    if getattr(parse, "refuses", False):
        return

    @functools.wraps(parse)
    def parse_tasks(self: Program) -> None:
        try:
            parse(self)
        except ParseError as e:
            raise Exit(f"runbook: usage: {e} (see `invoke --help <task>`)", code=REFUSED) from None

    parse_tasks.refuses = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]

"""Runs argument lists on hosts: commands are built elsewhere (`*/commands.py`), executed only here.

    >>> must(host, commands.read_link("/srv/app/current"), what="reading the current link").strip()
    'releases/20261128T090000Z-1.1.0'
"""

from testinfra.backend.base import CommandResult

from runbook.config import Host
from runbook.config.deadlines import Kind
from runbook.hosts import commands, connection


def run(host: Host, argv: list[str], cwd: str | None = None, combined: bool = False,
        kind: Kind | None = None) -> CommandResult:
    """Run `argv` on the host, every argument quoted, in the folder `cwd` when given, under the deadline of
    its `kind` (see `connection.run`).

    `combined`: its error output goes into its standard output, in the order written (for commands whose
    words are read or recorded as one text). A failing `cd` into `cwd` still reports on standard error.
    """
    wrapped = commands.combined(argv) if combined else argv
    if cwd is not None:
        wrapped = commands.in_folder(cwd, wrapped)
    return connection.run(host, *wrapped, kind=kind, shown=argv)


def must(host: Host, argv: list[str], *, what: str, cwd: str | None = None, combined: bool = False,
         kind: Kind | None = None) -> str:
    """Run `argv` (as `run`), which must succeed; its standard output. `ActionFailed` names the host,
    `what` was done and the reason: the last line the command wrote, or its exit code."""
    return connection.succeeded(host, run(host, argv, cwd, combined, kind), what)

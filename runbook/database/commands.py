"""Argument lists for the PostgreSQL clients and measurements run on the backup host; building them runs
nothing (`runbook.hosts.runner` does). A password is never an argument: libpq reads it from a password
file (`PGPASSFILE`) the caller wrote with `connection.put`.

    >>> table_of_contents("pg_restore", "/srv/backups/x.dump")
    ['pg_restore', '--list', '/srv/backups/x.dump']
"""

from runbook.hosts.commands import shell

MEASURE = r"""
if [ -d "$1" ]; then
  size=$(du -sb -- "$1" | cut -f1)
  sum=$(cd -- "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
else
  size=$(stat -c %s -- "$1"); sum=$(sha256sum -- "$1" | cut -d' ' -f1)
fi
echo "$size $sum"
"""
"""Prints "<bytes> <sha256>" of the file "$1", or of the folder "$1" (from its files' checksums, in order)."""


def _client(tool: str, args: list[str], dbname: str, password_file: str | None) -> list[str]:
    """`--dbname` is a conninfo without the password. With a password file, a PGPASSWORD the host has of
    its own is unset, since libpq would prefer it."""
    prefix = ["env", "-u", "PGPASSWORD", f"PGPASSFILE={password_file}"] if password_file else []
    return [*prefix, tool, *args, f"--dbname={dbname}"]


def dump(pg_dump: str, path: str, jobs: int, dbname: str, password_file: str | None = None,
         lock_wait: int | None = None, snapshot: str | None = None) -> list[str]:
    """pg_dump in custom format into the file `path`, or, with more than one job, into the folder `path`;
    `lock_wait`: seconds it may wait for a table another session has locked, then it fails; `snapshot`: a
    snapshot another session exported (`pg_export_snapshot()`), so the dump sees exactly what that session sees.
    The runbook's own schema (the protected rows' digests, `rows.SCHEMA`) is left out."""
    formats = ["--format=directory", f"--jobs={jobs}"] if jobs > 1 else ["--format=custom"]
    waits = [f"--lock-wait-timeout={lock_wait}s"] if lock_wait else []
    seen = [f"--snapshot={snapshot}"] if snapshot else []
    return _client(pg_dump, [*formats, *waits, *seen, "--exclude-schema=runbook_snapshot", f"--file={path}"], dbname,
                   password_file)


def restore(pg_restore: str, path: str, directory: bool, jobs: int, dbname: str,
            password_file: str | None = None) -> list[str]:
    """pg_restore of a dump over what the database has: in one transaction, or by `jobs` parallel jobs for
    a folder dump (those cannot share one)."""
    mode = [f"--jobs={jobs}"] if directory else ["--single-transaction"]
    return _client(pg_restore, ["--clean", "--if-exists", "--no-owner", *mode, path], dbname, password_file)


def schema_dump(pg_dump: str, dbname: str, password_file: str | None = None) -> list[str]:
    """The database's schema as SQL on standard output, without owners and privileges."""
    return _client(pg_dump, ["--schema-only", "--no-owner", "--no-privileges"], dbname, password_file)


def drill_restore(pg_restore: str, path: str, directory: bool, jobs: int, dbname: str,
                  password_file: str | None = None, use_list: str | None = None) -> list[str]:
    """pg_restore of a dump into an empty scratch database, stopping at the first error (a restore drill);
    `use_list`: a table of contents file naming the only entries to restore."""
    mode = [f"--jobs={jobs}"] if directory else ["--single-transaction"]
    listed = [f"--use-list={use_list}"] if use_list else []
    return _client(pg_restore, ["--exit-on-error", "--no-owner", *mode, *listed, path], dbname, password_file)


def session_options(statement: int, lock: int) -> str:
    """PostgreSQL session options that give up a statement after `statement` seconds and a wait for a
    lock another session holds after `lock` seconds."""
    return f"-c statement_timeout={statement}s -c lock_timeout={lock}s"


def session_limits(argv: list[str], statement: int, lock: int) -> list[str]:
    """`argv` whose PostgreSQL sessions (libpq's `PGOPTIONS`) have the `session_options`."""
    return ["env", f"PGOPTIONS={session_options(statement, lock)}", *argv]


def version(tool: str) -> list[str]:
    return [tool, "--version"]


def table_of_contents(pg_restore: str, path: str) -> list[str]:
    return [pg_restore, "--list", path]


def measure(path: str) -> list[str]:
    return shell(MEASURE, path)


SIZE_SECONDS = 5
"""A size measured while a dump is written gives up after this: it is for the live line, never waited for long."""


def size(path: str) -> list[str]:
    """The bytes the file or folder `path` holds now, as "<bytes>\t<path>" (`du`), within `SIZE_SECONDS`.

    >>> size("/srv/backups/x.dump")
    ['timeout', '5', 'du', '-sb', '--', '/srv/backups/x.dump']
    """
    return ["timeout", str(SIZE_SECONDS), "du", "-sb", "--", path]

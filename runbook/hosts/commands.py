"""Argument lists for commands any host understands; building them runs nothing.

A shell appears only as a constant script with its values as "$1", "$2", ...: a value never becomes
shell text, so a path with spaces or `$(...)` in it stays one argument.

    >>> remove_trees("/srv/app/releases/1 $(x)")
    ['rm', '-rf', '--', '/srv/app/releases/1 $(x)']
"""

IN_FOLDER = 'cd -- "$1" && shift && exec "$@"'
"""Runs "$2", "$3", ... as one command in the folder "$1"."""

COMBINED = 'exec "$@" 2>&1'
"""Runs "$@" with its error output written into its standard output, in the order it came."""


def shell(script: str, *args: str) -> list[str]:
    """A POSIX shell script with `args` as "$1", "$2", ..."""
    return ["sh", "-c", script, "sh", *args]


def in_folder(folder: str, argv: list[str]) -> list[str]:
    return shell(IN_FOLDER, folder, *argv)


def combined(argv: list[str]) -> list[str]:
    return shell(COMBINED, *argv)


def make_folders(*paths: str, mode: str | None = None) -> list[str]:
    """`mkdir -p`; `mode` (e.g. "0750") applies to each path's last folder only, as mkdir's `-m` does."""
    return ["mkdir", "-p", *(["-m", mode] if mode else []), "--", *paths]


def remove_files(*paths: str) -> list[str]:
    return ["rm", "-f", "--", *paths]


def remove_trees(*paths: str) -> list[str]:
    return ["rm", "-rf", "--", *paths]


def link(target: str, path: str) -> list[str]:
    """A symbolic link at `path` to `target`, replacing a link already there (never following it)."""
    return ["ln", "-sfn", "--", target, path]


def read_link(path: str) -> list[str]:
    return ["readlink", "--", path]


def list_folder(path: str) -> list[str]:
    return ["ls", "-1", "--", path]


def listening_sockets() -> list[str]:
    """Every listening TCP socket, one a line without a header, addresses and ports as numbers."""
    return ["ss", "-Htln"]


def lines_containing(text: str, path: str) -> list[str]:
    """The lines of the file `path` that hold `text` as it is (exit code 1: none, 2: no such file)."""
    return ["grep", "-F", "-e", text, "--", path]


KILL_AFTER = 5
"""Seconds a command stopped at its deadline (SIGTERM) has to end before it is killed (SIGKILL)."""
EXPIRED = (124, 137)
"""GNU timeout's exit codes for a command it stopped: ended by SIGTERM, or killed after it."""


def without_env(argv: list[str]) -> list[str]:
    """`argv` without a leading `env [-u NAME] NAME=value ...`: the command as a person knows it."""
    if argv[:1] != ["env"]:
        return argv
    rest = argv[1:]
    while rest and (rest[0] == "-u" or "=" in rest[0]):
        rest = rest[2:] if rest[0] == "-u" else rest[1:]
    return rest


def bounded(seconds: int, argv: list[str]) -> list[str]:
    """`argv` under a deadline on the host itself: GNU timeout runs it in a process group of its own and,
    after `seconds`, stops the whole group (children included), killing it `KILL_AFTER` s later."""
    return ["timeout", f"--kill-after={KILL_AFTER}", f"{seconds}s", *argv]

"""Errors that end a run with one of the exit codes users rely on (see README, "Exit codes")."""

OK = 0
FAILED = 1
"""A check or phase failed and the environment is on a known healthy release."""
REFUSED = 2
"""Usage, configuration or refusal: nothing changed."""
NEEDS_HUMAN = 3
"""Failed and the rollback failed too: a human is needed."""


class RunbookError(Exception):
    """An error with a message for the user and the exit code it ends the run with."""

    exit_code = REFUSED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(RunbookError):
    """The environment file, a secret reference or an argument is wrong; nothing ran."""


class CheckFailed(AssertionError):
    """A check measured something outside its threshold; the message names host, check and values."""


class ActionFailed(RunbookError):
    """An action on the environment failed (a command, a copy, a switch); the pipeline decides what follows.

    `evidence`: what was read on the hosts to show why (a failed unit's journal), for the phase's report.
    """

    exit_code = FAILED

    def __init__(self, message: str, exit_code: int | None = None, evidence: list[str] | None = None) -> None:
        super().__init__(message, exit_code)
        self.evidence = list(evidence or [])


class DeadlineExceeded(ActionFailed):
    """Something the run waited for (a command on a host, the checks, a statement) outlived its deadline
    and was stopped; the message names where, what and the deadline."""

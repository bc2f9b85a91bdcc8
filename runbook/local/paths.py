"""Where the local environment keeps its state, and the one runner of its set-up commands."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from runbook.config import Environment
from runbook.errors import ConfigError, RunbookError


@dataclass(frozen=True)
class Paths:
    """Where the local environment keeps its state."""

    state: Path

    @property
    def pgdata(self) -> Path:
        return self.state / "postgres" / "data"

    @property
    def pgsocket(self) -> Path:
        return self.state / "postgres" / "socket"

    @property
    def pglog(self) -> Path:
        return self.state / "postgres" / "postgres.log"

    @property
    def supervisor(self) -> Path:
        return self.state / "supervisor"

    @property
    def supervisord_conf(self) -> Path:
        return self.supervisor / "supervisord.conf"


def paths(env: Environment) -> Paths:
    if env.local is None:
        raise ConfigError(f"{env.source}: environment {env.name!r} is not a local environment (no `local:` section)")
    return Paths(env.local.state_dir)


def run(argv: list[str], what: str, timeout: float = 120) -> str:
    """Run a set-up command; its failure or silence past `timeout` is a RunbookError naming `what`."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunbookError(f"{what}: no answer within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise RunbookError(f"{what} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout

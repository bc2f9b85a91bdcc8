"""What a verifying phase receives from the run it verifies: one typed model, written by the engine
into the phase's folder and read by the pytest plugin, so a renamed field fails at once on both sides.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class BaselineFigures(BaseModel):
    """The serving release's error rate and p95 latency, measured before the deploy changed anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p95_seconds: float | None
    error_rate: float | None


class RunContext(BaseModel):
    """The release being verified and what it is compared with.

        >>> RunContext(release="20261128T090000Z-1.1.0", version="1.1.0", target="20261101T080000Z-1.0.0")
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_run: bool = True
    """False when a person runs the features directly: the context is then read from the environment."""
    release: str | None = None
    """The release this run put in place (a deploy) or left (a rollback)."""
    version: str | None = None
    change: str | None = None
    """The change ticket the run was approved under (`--change`)."""
    target: str | None = None
    """The release that serves after a rollback, and the one to return to during a deploy."""
    target_schema: str | None = None
    snapshot: dict[str, dict] | None = None
    """The protected tables' columns, row counts and checksums taken before the run changed anything (`database.rows`)."""
    baseline: BaselineFigures | None = None
    local_up: bool = False
    """The run found its local stack up when it opened the environment (or started what was missing):
    the verifying phases do not check it again."""

    @property
    def first_deploy(self) -> bool:
        """No release served before this deploy, so there is nothing to compare with or return to."""
        return self.target is None

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json())
        return path

    @classmethod
    def read(cls, path: Path) -> "RunContext":
        return cls.model_validate_json(path.read_text())

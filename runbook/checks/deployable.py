"""Step 2's package and configuration review: the package of the requested version, and the
configuration the release will receive."""

from pathlib import Path

from runbook.config import Environment
from runbook.errors import CheckFailed
from runbook.findings import Finding
from runbook.release import configfiles, package


def deployment_package(env: Environment, version: str) -> tuple[Path, package.Contents]:
    """The package of `version` in the package folder, read; `CheckFailed` when it is missing or unreadable."""
    path = env.app.package_dir / package.file_name(env.app.name, version)
    if not path.exists():
        raise CheckFailed(f"package {path} does not exist (build it with `invoke package --version {version}`)")
    contents = package.read(path, package.texts(env))
    if contents.problems:
        raise CheckFailed(f"package {path}: " + "; ".join(contents.problems))
    return path, contents


def describe(path: Path, contents: package.Contents) -> str:
    return f"{path}\nsha256 {package.checksum(path)}\n{len(contents.manifest)} files in the manifest"


def configuration_renders(env: Environment) -> list[Finding]:
    """Every configuration file renders with all of its secrets resolved."""
    return [Finding(f"config {f.path}", True, f"{len(configfiles.render(env, f).splitlines())} lines, mode {f.mode}")
            for f in env.app.config]


def configuration_changes(env: Environment) -> dict[str, str]:
    """Each configuration file's diff against the one deployed now, secrets redacted, by title."""
    return {f"{f.path}: deployed -> new (secrets redacted)": configfiles.diff(env, f, configfiles.deployed(env, f))
            for f in env.app.config}

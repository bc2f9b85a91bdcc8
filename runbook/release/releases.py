"""Releases side by side on each app host: `releases/<UTC time>-<version>/`, a `current` link switched
atomically, configuration kept per release in `shared/config/<release>/`, old releases pruned.

    releases/20261128T090000Z-1.1.0/   the unpacked package; .env -> ../../shared/config/<release>/.env
    current -> releases/20261128T090000Z-1.1.0
"""

import hashlib
import re
from datetime import datetime
from pathlib import PurePosixPath

from runbook.config import Environment, Host
from runbook.config.deadlines import Kind
from runbook.database import migrations
from runbook.errors import ActionFailed, ConfigError
from runbook.findings import Finding
from runbook.hosts import commands as host_commands
from runbook.hosts import connection, runner
from runbook.release import commands, configfiles, package
from runbook.release.package import MANIFEST, VERSION_PATTERN

UNFINISHED = ".runbook-unfinished"
"""Marks a release folder whose unpacking has not completed; the next run removes it."""


NAME_PATTERN = re.compile(rf"[0-9]{{8}}T[0-9]{{6}}Z-{VERSION_PATTERN.pattern}")
"""A whole release name, `<UTC time>-<version>` (always `fullmatch`)."""


def name(version: str, moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}-{version}"


def validate_name(release: str) -> str:
    """The release name if it is one, whole; `ConfigError` (exit 2) naming the value otherwise."""
    if not NAME_PATTERN.fullmatch(release) or ".." in release:
        raise ConfigError(f"release {release!r} is not valid: expected <UTC time>-<version>, "
                          "e.g. 20261128T090000Z-1.1.0")
    return release


def version_of(release: str) -> str:
    return release.split("-", 1)[1]


def folder(env: Environment, release: str) -> str:
    return str(env.app.releases / release)


def current(env: Environment, host: Host) -> str | None:
    """The release `current` points at on the host; None before the first deploy."""
    result = runner.run(host, host_commands.read_link(str(env.app.current)))
    return PurePosixPath(result.stdout.strip()).name if result.rc == 0 and result.stdout.strip() else None


def _folders(env: Environment, host: Host) -> dict[str, bool]:
    """Every release folder on the host, and whether its unpacking finished."""
    out = runner.must(host, commands.list_releases(str(env.app.releases), UNFINISHED), what="listing releases")
    return {line.split(" ", 1)[1]: line.startswith("release ") for line in out.splitlines()}


def listing(env: Environment, host: Host) -> list[str]:
    """Finished release folders on the host, oldest first."""
    return sorted(r for r, finished in _folders(env, host).items() if finished)


def unfinished(env: Environment, host: Host) -> list[str]:
    return sorted(r for r, finished in _folders(env, host).items() if not finished)


def clean_unfinished(env: Environment, host: Host) -> list[str]:
    """Remove release folders a crashed run left half unpacked; never the current one."""
    live = current(env, host)
    removed = [r for r in unfinished(env, host) if r != live]
    for release in removed:
        runner.must(host, host_commands.remove_trees(folder(env, release)),
                    what=f"removing unfinished release {release}")
    return removed


def unpack(env: Environment, host: Host, package: str, release: str) -> None:
    """Unpack the package into a new release folder and link the shared folders into it."""
    target = folder(env, release)
    for step in commands.unpack(target, package, UNFINISHED, str(env.app.shared), env.app.linked_dirs):
        runner.must(host, step, what=f"unpacking {package} into {target}")


def finish(env: Environment, host: Host, release: str) -> None:
    runner.must(host, host_commands.remove_files(f"{folder(env, release)}/{UNFINISHED}"),
                what=f"finishing release {release}")


def configure(env: Environment, host: Host, release: str) -> list[str]:
    """Write each config file into `shared/config/<release>/` with its mode and link it into the release."""
    written = []
    base = env.app.shared / "config" / release
    for file in env.app.config:
        target = base / file.path
        runner.must(host, host_commands.make_folders(str(target.parent), mode="0750"), what=f"creating {target.parent}")
        connection.put(host, str(target), configfiles.render(env, file).encode(), int(file.mode, 8))
        link = env.app.releases / release / file.path
        for step in host_commands.make_folders(str(link.parent)), host_commands.link(str(target), str(link)):
            runner.must(host, step, what=f"linking {file.path} into {release}")
        written.append(f"{target} (mode {file.mode}) linked as {link}")
    return written


def switch(env: Environment, host: Host, release: str | None) -> None:
    """Point `current` at the release in one rename (a new link, then renamed over `current`).

    None removes `current`: the environment then has no release, as before its first deploy.
    """
    if release is None:
        runner.must(host, host_commands.remove_files(str(env.app.current)), what="removing the current link")
        return
    runner.must(host, commands.switch(str(env.app.current), f"releases/{release}"),
                what=f"switching current to {release}")


def prune(env: Environment, host: Host, keep: set[str]) -> tuple[list[str], list[str]]:
    """Remove the oldest releases beyond `keep_releases`, never one named in `keep`; those removed, and
    those left."""
    releases = listing(env, host)
    surplus = len(releases) - env.app.keep_releases
    removed = [r for r in releases if r not in keep][: max(surplus, 0)]
    for release in removed:
        _remove(env, host, release, what=f"removing old release {release}")
    return removed, [r for r in releases if r not in removed]


def remove(env: Environment, host: Host, release: str) -> None:
    """Remove a release folder and its configuration in `shared/config/<release>/`."""
    _remove(env, host, release, what=f"removing {release}")


def _remove(env: Environment, host: Host, release: str, what: str) -> None:
    config = str(env.app.shared / "config" / release)
    runner.must(host, host_commands.remove_trees(folder(env, release), config), what=what)


def remove_old_packages(env: Environment, host: Host, packages_dir: str, keep: str) -> None:
    """Remove the packages earlier deploys copied into `packages_dir`, all but the file named `keep`."""
    runner.must(host, commands.remove_old_packages(packages_dir, keep), what="removing the packages of earlier deploys")


def run_in(env: Environment, host: Host, release_folder: str, argv: list[str], kind: Kind | None = None) -> str:
    """Run an app command (a migration, say) in a release folder, under the deadline of its `kind`; what
    it wrote, error output included."""
    return runner.must(host, argv, cwd=release_folder, combined=True,
                       what=" ".join(host_commands.without_env(argv)), kind=kind)


def verify_files(env: Environment, host: Host, release: str) -> str:
    """`sha256sum -c` of the release's manifest on the host: every file as packaged."""
    result = runner.run(host, commands.check_manifest(MANIFEST), cwd=folder(env, release))
    if result.rc != 0:
        raise ActionFailed(f"host {host.name}: release {release} differs from its manifest: {(result.stdout + result.stderr).strip()[-500:]}")
    return f"every file of {release} matches {MANIFEST} on {host.name}"


def files_state(env: Environment, host: Host, release: str) -> str:
    """A digest of the inode, size and change time of every file the release's manifest lists, as the host
    has them now. The kernel sets a file's change time at every change to its content or metadata, and
    nothing sets it back: while the digest is the one taken just before `verify_files` passed, the files
    are the ones it checked (as git trusts its index), and a rollback need not read them all again."""
    where = folder(env, release)
    manifest = runner.must(host, ["cat", MANIFEST], cwd=where, what=f"reading {release}/{MANIFEST}")
    listed, _ = package.manifest_entries(manifest)
    found = runner.must(host, commands.file_states(), cwd=where, what=f"listing the files of {release}")
    states = sorted(line for line in found.splitlines() if line.split(" ", 3)[-1] in listed)
    return hashlib.sha256("\n".join(states).encode()).hexdigest()


def points_at(env: Environment, host: Host, expected: str | None) -> Finding:
    found = current(env, host)
    detail = f"current -> {found or '(no link)'}" + ("" if found == expected else f", expected {expected or '(no link)'}")
    return Finding(f"host {host.name}", found == expected, detail)


def config_in_place(env: Environment, host: Host, release: str) -> list[Finding]:
    """Each config file of the release: a link into `shared/config/<release>/` to a file with its mode."""
    found = []
    remote = connection.connect(host)
    for file in env.app.config:
        link = remote.file(str(env.app.releases / release / file.path))
        target = str(env.app.shared / "config" / release / file.path)
        actual = remote.file(target)
        problems = []
        if not link.is_symlink or link.linked_to != target:
            problems.append(f"{link.path} is not a link to {target}")
        if not actual.exists:
            problems.append(f"{target} is missing")
        elif f"{actual.mode:04o}" != file.mode:
            problems.append(f"{target} has mode {actual.mode:04o}, required {file.mode}")
        detail = "; ".join(problems) or f"{file.path} -> {target}, mode {file.mode}"
        found.append(Finding(f"host {host.name}", not problems, detail))
    return found


def migration_versions(env: Environment, host: Host, release: str) -> set[str]:
    """Versions of the migration files the release holds on the host."""
    result = runner.run(host, host_commands.list_folder(str(env.app.releases / release / env.app.migrations.dir)))
    names = result.stdout.split() if result.rc == 0 else []
    return {m.group("version") for m in map(migrations.FILE.match, names) if m}

"""Argument lists for what a deploy does to an app host's release folders and packages; building them
runs nothing (`runbook.hosts.runner` does).

    >>> switch("/srv/app/current", "releases/20261128T090000Z-1.1.0")[-2:]
    ['/srv/app/current', 'releases/20261128T090000Z-1.1.0']
"""

from runbook.hosts.commands import make_folders, remove_trees, shell

LIST = ('cd -- "$1" 2>/dev/null || exit 0; for d in */; do [ -d "$d" ] || continue; '
        'if [ -e "$d$2" ]; then echo "unfinished ${d%/}"; else echo "release ${d%/}"; fi; done')
"""Prints `release <name>` or `unfinished <name>` (it holds the marker "$2") for each folder in "$1";
nothing when "$1" does not exist yet."""

SWITCH = 'set -e; tmp="$1.runbook-$$"; ln -sfn -- "$2" "$tmp"; mv -Tf -- "$tmp" "$1"'
"""Points the link "$1" at "$2" in one rename: a new link beside it, renamed over it, so that "$1" is
never missing or half made; one round trip, hence a script."""

INSTALLED = """
import json, sys
from importlib import metadata
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""
"""Prints, as JSON, the installed version of each distribution named in its arguments (null: none)."""


def list_releases(releases: str, marker: str) -> list[str]:
    return shell(LIST, releases, marker)


def unpack(folder: str, package: str, marker: str, shared: str, linked: list[str]) -> list[list[str]]:
    """The steps, in order, that unpack `package` into the new release `folder`: the folder with `marker`
    in it first (until it is removed the release counts as unfinished), then the package's files, then
    each of the `linked` folders replaced by a link to its folder in `shared`."""
    steps = [make_folders(folder), ["touch", "--", f"{folder}/{marker}"],
             ["tar", "-xzf", package, "-C", folder, "--strip-components=1"]]
    if not linked:
        return steps
    targets, links = [f"{shared}/{d}" for d in linked], [f"{folder}/{d}" for d in linked]
    return steps + [make_folders(*targets), remove_trees(*links),
                    *(["ln", "-s", "--", target, link] for target, link in zip(targets, links))]


def switch(current: str, target: str) -> list[str]:
    return shell(SWITCH, current, target)


def check_manifest(manifest: str) -> list[str]:
    """`sha256sum -c` of a manifest, run in the folder its paths are relative to; silent when all match."""
    return ["sha256sum", "--strict", "--quiet", "-c", manifest]


def file_states() -> list[str]:
    """Each file under the current folder, a line each: its inode, size and change time, then its path."""
    return ["find", ".", "-type", "f", "-printf", "%i %s %C@ %P\\n"]


def remove_old_packages(folder: str, keep: str) -> list[str]:
    """Every plain file directly in `folder` except the one named `keep`."""
    return ["find", folder, "-maxdepth", "1", "-type", "f", "!", "-name", keep, "-delete"]


def installed_versions(python: str, names: list[str]) -> list[str]:
    return [python, "-c", INSTALLED, *names]

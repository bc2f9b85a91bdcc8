"""Read YAML keeping the line of every key, so that an error can name the line it is about.

Hostile input is refused early and cheaply: a document larger than `MAX_BYTES`, nested more than
`MAX_DEPTH` deep, with more than `MAX_ALIASES` aliases, or one that would expand (aliases followed) to
more than `MAX_NODES` values is a `ConfigError` naming the file, before anything is built from it.
"""

import contextlib
from pathlib import Path
from typing import Any

import yaml

from runbook.errors import ConfigError

Location = tuple[str | int, ...]
_SCALARS = yaml.SafeLoader("")

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_DEPTH = 100

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML was built with it: a tenth of the pure-Python one's time (12 ms for the local
environment file, read by every process of a run)."""


class _Refused(Exception):
    """Why the document is refused, and where."""

    def __init__(self, reason: str, mark: yaml.Mark | None) -> None:
        super().__init__(f"line {mark.line + 1}: {reason}" if mark else reason)


def _bound(data: bytes) -> None:
    """Refuse the document before anything is composed from it: collections nested more than `MAX_DEPTH` deep
    (what is built from them recurses), more than `MAX_ALIASES` aliases, one inside the node it refers to, or
    a node that would hold more than `MAX_NODES` values once they are expanded. One pass over its events,
    adding up every node's expanded size as it ends; an alias of an anchor never defined is left for the
    composer to name."""
    sizes: dict[str, int] = {}
    """The expanded size of each anchored node that has ended."""
    open_: list[tuple[yaml.Event | None, int]] = [(None, 0)]
    """Each collection not ended yet (the document's top first), with the size of what it holds so far."""
    aliases = 0
    for event in yaml.parse(data, Loader=_LOADER):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(open_) > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} deep", event.start_mark)
            open_.append((event, 1))
            continue
        node, size = event, 1
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases", event.start_mark)
            if any(start is not None and start.anchor == event.anchor for start, _ in open_):
                raise _Refused("an alias refers to the node that holds it", event.start_mark)
            node, size = None, sizes.get(event.anchor, 0)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node, size = open_.pop()
            if size > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} values once its aliases are expanded", node.start_mark)
        elif not isinstance(event, yaml.ScalarEvent):
            continue
        if node is not None and node.anchor is not None:
            sizes[node.anchor] = size
        holder, held = open_[-1]
        open_[-1] = (holder, held + size)


def _build(node: yaml.Node, path: Location, lines: dict[Location, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in result:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark
                )
            result[key] = _build(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), lines) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node)


def _compose(path: Path) -> yaml.Node | None:
    """The document's node graph; `ConfigError` when the file is too large or expands too far."""
    with path.open("rb") as file:
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: refused: larger than {MAX_BYTES} bytes")
    try:
        _bound(data)
    except _Refused as e:
        raise ConfigError(f"{path}: refused YAML, {e}") from None
    return yaml.compose(data, Loader=_LOADER)


def check(path: Path) -> None:
    """Refuse `path` for its size or aliases as `load` would, for a file another parser reads (an Ansible
    YAML inventory): that parser names its syntax errors itself."""
    with contextlib.suppress(yaml.YAMLError):
        _compose(path)


def load(path: Path) -> tuple[Any, dict[Location, int]]:
    """The document in `path` and the line number of every key and item in it."""
    node = _compose(path)
    lines: dict[Location, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines), lines


def data(path: Path) -> Any:
    """The document in `path`, read within the same limits."""
    return load(path)[0]

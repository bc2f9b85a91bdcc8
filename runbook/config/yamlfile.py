"""Read YAML keeping the line of every key, so that an error can name the line it is about.

Hostile input is refused early and cheaply: a document larger than `MAX_BYTES`, more than
`MAX_ALIASES` aliases, or one that would expand (aliases followed) to more than `MAX_NODES` values
is a `ConfigError` naming the file, before anything is built from it.
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


class _Refused(Exception):
    """Why the document is refused, and where."""

    def __init__(self, reason: str, mark: yaml.Mark | None) -> None:
        super().__init__(f"line {mark.line + 1}: {reason}" if mark else reason)


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts aliases and the size of every node with its aliases expanded."""

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        is_alias = isinstance(event, yaml.AliasEvent)
        if is_alias:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases", event.start_mark)
        node = super().compose_node(parent, index)
        if is_alias:
            if id(node) not in self.sizes:
                raise _Refused("an alias refers to the node that holds it", event.start_mark)
            return node
        size = 1 + sum(self.sizes[id(child)] for child in _children(node))
        if size > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values once its aliases are expanded", node.start_mark)
        self.sizes[id(node)] = size
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
    loader = _BoundedLoader(data)
    try:
        return loader.get_single_node()
    except _Refused as e:
        raise ConfigError(f"{path}: refused YAML, {e}") from None
    finally:
        loader.dispose()


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

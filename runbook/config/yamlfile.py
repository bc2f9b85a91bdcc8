"""Read YAML keeping the line of every key, so that an error can name the line it is about."""

from pathlib import Path
from typing import Any

import yaml

Location = tuple[str | int, ...]
_SCALARS = yaml.SafeLoader("")


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


def load(path: Path) -> tuple[Any, dict[Location, int]]:
    """The document in `path` and the line number of every key and item in it."""
    node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    lines: dict[Location, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines), lines

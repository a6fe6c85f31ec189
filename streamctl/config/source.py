"""The topology file as YAML: the data, the line of every key, and the keys written twice (which YAML
itself would silently resolve to the last one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass
class Source:
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)  # where each key (or list item) is written
    duplicates: list[tuple[Loc, str]] = field(default_factory=list)  # (path, message)

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, else of its nearest parent written in the file."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None


def read_yaml(text: str) -> Source:
    """Parse `text` (yaml.YAMLError on bad syntax); lines and duplicates come from the node tree."""
    data = yaml.safe_load(text)
    source = Source(data)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _walk(root, (), source)
    return source


def _walk(node: yaml.Node, loc: Loc, source: Source) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is None or key == "<<":
                continue
            if key in seen:
                source.duplicates.append(((*loc, key), f"key {key!r} is written twice (lines {seen[key]} and "
                                                       f"{line}); YAML would keep only the last"))
            else:
                seen[key] = line
            source.lines.setdefault((*loc, key), line)
            _walk(value_node, (*loc, key), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            source.lines.setdefault((*loc, i), item.start_mark.line + 1)
            _walk(item, (*loc, i), source)

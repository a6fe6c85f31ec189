"""Targeted edits of a topology file that keep its comments and layout (a YAML round trip would not)."""

from __future__ import annotations

import re
from pathlib import Path

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the block opened by lines[start]: the next non-blank, non-comment line not deeper."""
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#") and len(lines[i]) - len(lines[i].lstrip()) <= indent:
            return i
    return len(lines)


def _find(lines: list[str], key: str, lo: int, hi: int, indent: int | None) -> int | None:
    for i in range(lo, hi):
        m = _KEY.match(lines[i])
        if m and m["key"] == key and (indent is None or len(m["indent"]) == indent):
            return i
    return None


def set_scalar(text: str, path: tuple[str, ...], value: str) -> str:
    """Set a nested mapping scalar (e.g. metadata.workers.count), keeping any trailing comment; missing
    keys are inserted, indented like their siblings."""
    lines = text.splitlines(keepends=True)
    lo, hi, indent = 0, len(lines), 0
    for depth, key in enumerate(path):
        at = _find(lines, key, lo, hi, indent if depth == 0 else None)
        if at is None:
            child_indent = 0 if depth == 0 else _child_indent(lines, lo, hi, indent + 2)
            inserted = [f"{' ' * (child_indent + 2 * i)}{k}:\n" for i, k in enumerate(path[depth:-1])]
            inserted.append(f"{' ' * (child_indent + 2 * (len(path) - depth - 1))}{path[-1]}: {value}\n")
            if hi > 0 and hi == len(lines) and lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines[hi:hi] = inserted
            return "".join(lines)
        m = _KEY.match(lines[at])
        assert m is not None
        indent = len(m["indent"])
        if depth == len(path) - 1:
            rest = m["rest"]
            comment = re.search(r"\s+#.*$", rest)
            tail = comment.group(0) if comment else ""
            newline = "\n" if lines[at].endswith("\n") else ""
            lines[at] = f"{m['indent']}{key}: {value}{tail.rstrip()}{newline}"
            return "".join(lines)
        lo, hi = at + 1, _block_end(lines, at, indent)
    return "".join(lines)


def _child_indent(lines: list[str], lo: int, hi: int, default: int) -> int:
    for i in range(lo, hi):
        m = _KEY.match(lines[i])
        if m and not lines[i].lstrip().startswith("#"):
            return len(m["indent"])
    return default


def set_worker_count(path: Path, count: int) -> None:
    """Rewrite only metadata.workers.count in the topology file."""
    path.write_text(set_scalar(path.read_text(), ("metadata", "workers", "count"), str(count)))

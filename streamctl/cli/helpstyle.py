"""One style for every command's --help: flags show no value placeholder (Typer's rich help writes `<bool>`
after each), values one upper-case metavar (FILE, TEXT, INTEGER, NUMBER, SECONDS, or for a choice the
option's name, its help listing the values), and a command's summary in the list of commands is its first
sentence on one line. Typer has no setting for the placeholders, so its two display methods are replaced
here, once, when the CLI is imported (tests/unit/test_cli_front_door.py checks every command's help)."""

from __future__ import annotations

import re
from typing import Any, get_args

from typer.core import TyperArgument, TyperOption

NAMED = {"file": "FILE", "output": "FILE", "state_dir": "DIR"}


def metavar(param: Any) -> str:
    """'' for a flag, else the declared metavar, else one derived from the annotation."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    declared = getattr(param, "metavar", None)
    if declared:
        return str(declared)
    if param.name in NAMED:
        return NAMED[param.name]
    desc = getattr(param, "type_descriptor", None)
    if desc is None:  # a Typer built on Click's own types
        return str(getattr(param.type, "name", "text")).upper()
    if desc.is_choice:
        return str(param.name).upper()  # the choices themselves are listed in the option's help
    if desc.is_datetime:
        return "YYYY-MM-DD"
    if desc.is_path:
        return "PATH"
    inner = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    if inner is int:
        return "INTEGER"
    if inner is float:
        return "NUMBER"
    return "TEXT"


def _option_type(self: TyperOption, ctx: Any) -> str | None:
    return metavar(self) + ("..." if self.multiple else "")


def _argument_type(self: TyperArgument, ctx: Any) -> str | None:
    return ""  # the argument's own column already shows its name (NODE, SHARD)


TyperOption.display_type_rich = _option_type  # type: ignore[method-assign]
TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign,assignment]

_SENTENCE_END = re.compile(r"(?<=\S)[.;](\s|$)")


def summary(help_text: str | None) -> str:
    """The first sentence of a command's help, on one line, without its final stop."""
    first = (help_text or "").strip().split("\n\n")[0]
    text = " ".join(first.split())
    end = _SENTENCE_END.search(text)
    return text[:end.start()] if end else text


def tidy(cmd: Any) -> Any:
    """Give `cmd` (and the commands of a group) its one-line summary."""
    cmd.short_help = summary(cmd.help)
    for sub in getattr(cmd, "commands", {}).values():
        tidy(sub)
    return cmd

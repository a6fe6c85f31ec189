"""pydantic's validation errors in our words: the YAML path, what was expected and the value found, and
for an unknown key the key most likely meant."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails


def yaml_path(loc: tuple[Any, ...]) -> str:
    """('metadata', 'workers', 1, 'port') -> 'metadata.workers[1].port'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def kind(value: Any) -> str:
    """A value as YAML calls it: a mapping, a list, text 'abc', a number 3, true/false, nothing."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "nothing (null)"
    return f"{str(value)!r}"


EXPECTED = {
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "text", "list_type": "a list", "tuple_type": "a list",
}


def message(err: ErrorDetails, model: type[BaseModel]) -> str:
    """One pydantic error as `path: what is wrong`, in the words of the topology file."""
    loc = tuple(p for p in err["loc"] if p not in ("function-after",))
    value, ctx, typ = err.get("input"), err.get("ctx") or {}, err["type"]
    if typ == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(str(loc[-1]), allowed_keys(model, loc[:-1]))
    elif typ in EXPECTED:
        msg = f"expected {EXPECTED[typ]}, got {kind(value)}"
    elif typ == "literal_error":
        msg = f"expected {ctx.get('expected')}, got {kind(value)}"
    elif typ == "missing":
        msg = "this key is required"
    elif typ == "string_pattern_mismatch" and loc and loc[-1] == "max_slot_wal_keep_size":
        msg = f"{value!r} is not a size: use a number with kB, MB, GB or TB (e.g. 4GB), or -1 for unbounded"
    elif typ == "string_pattern_mismatch":
        msg = f"{value!r} is not a valid name (lowercase letters, digits and '-' or '_')"
    elif typ in ("greater_than_equal", "less_than_equal") and loc and loc[-1] == "port":
        msg = f"port {value} is out of range (1-65535)"
    elif typ == "greater_than_equal":
        msg = f"must be at least {_num(ctx.get('ge'))}, got {value}"
    elif typ == "less_than_equal":
        msg = f"must be at most {_num(ctx.get('le'))}, got {value}"
    elif typ == "value_error":
        msg = err["msg"].removeprefix("Value error, ")
    else:
        msg = err["msg"]
    return f"{yaml_path(loc)}: {msg}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _did_you_mean(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at `loc` may hold (empty when `loc` is not a model)."""
    current: Any = model
    for part in loc:
        current = _model_in(current)
        if current is None:
            return []
        if isinstance(part, int):
            continue  # an item of a list: its annotation was unwrapped by _model_in
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = info.annotation
    found = _model_in(current)
    return list(found.model_fields) if found is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as `X`, `X | None`, `tuple[X, ...]`, `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None

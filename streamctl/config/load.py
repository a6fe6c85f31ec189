"""Read topology.yaml: parse, interpolate ${VAR}, validate types, then cross-check; no side effects."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streamctl.config.checks import semantic_errors
from streamctl.config.messages import message, yaml_path
from streamctl.config.model import Topology
from streamctl.config.source import Source, read_yaml
from streamctl.errors import ConfigError
from streamctl.tls.config import tls_errors

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(data: Any, env: Mapping[str, str], loc: tuple[Any, ...] = (),
                errors: list[str] | None = None, unset: list[tuple[Any, ...]] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; `$$` is a literal `$`. A variable that is not
    set is one error (in `errors`, its place in `unset`, so the empty text left there adds no other)."""
    errors = [] if errors is None else errors
    if isinstance(data, dict):
        return {k: interpolate(v, env, (*loc, k), errors, unset) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, (*loc, i), errors, unset) for i, v in enumerate(data)]
    if not isinstance(data, str):
        return data

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            errors.append(f"{yaml_path(loc)}: environment variable {name} is not set "
                          f"(set it, or write ${{{name}:-default}})")
            if unset is not None:
                unset.append(loc)
            return ""
        return value

    return _VAR.sub(repl, data)


MAX_REPAIRS = 5  # rounds of setting invalid values aside to reach the cross-field checks


def parse_topology(data: Any, source: str = "<topology>", env: Mapping[str, str] | None = None,
                   base: Path | None = None, yaml_source: Source | None = None) -> Topology:
    """Validate already-parsed YAML; raise ConfigError listing every problem with its YAML path (and its
    line, when `yaml_source` says where each key is written)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, not {type(data).__name__}")
    src = yaml_source or Source(data)
    # a duplicate names both its lines itself
    found: list[tuple[tuple[Any, ...], str]] = [((), f"{yaml_path(loc)}: {msg}") for loc, msg in src.duplicates]
    env_errors: list[str] = []
    unset: list[tuple[Any, ...]] = []
    data = interpolate(data, os.environ if env is None else env, errors=env_errors, unset=unset)
    found += [(loc, e) for loc, e in zip(unset, env_errors, strict=True)]
    topology, set_aside = _validate(data, unset, found)
    if topology is not None:
        cross = [*semantic_errors(topology), *tls_errors(topology, base or Path.cwd())]
        # a value set aside was replaced by its default: what follows from the default is not the file's
        found += [(path_loc(e.split(":", 1)[0]), e) for e in cross
                  if not any(_mentions(e, yaml_path(loc)) for loc in set_aside)]
    if found:
        errors = [f"{e} (line {line})" if (line := src.line(loc)) is not None and loc else e for loc, e in found]
        noun = "error" if len(errors) == 1 else "errors"
        raise ConfigError(f"{source}: {len(errors)} {noun} in the topology",
                          hint="fix the file and run `streamctl validate -f FILE`",
                          details=[f"{source}: {e}" for e in errors])
    assert topology is not None
    return topology


def _validate(data: dict[str, Any], unset: list[tuple[Any, ...]],
              found: list[tuple[tuple[Any, ...], str]]) -> tuple[Topology | None, list[tuple[Any, ...]]]:
    """The model, after setting aside (and reporting) every invalid value, so that the cross-field checks
    still run on the rest: a bad cluster name must not hide a port clash. None when that cannot be done."""
    set_aside = list(unset)
    data = _without(data, unset)
    for attempt in range(MAX_REPAIRS):
        try:
            return Topology.model_validate(data), set_aside
        except ValidationError as exc:
            errs = [e for e in exc.errors() if not any(_under(e["loc"], u) for u in unset)]
            if attempt == 0:
                found += [(tuple(p for p in e["loc"] if p != "function-after"), message(e, Topology)) for e in errs]
            locs = [tuple(p for p in e["loc"] if p != "function-after") for e in exc.errors()]
            if any(e["type"] == "missing" or not loc or isinstance(loc[-1], int) for e, loc in zip(
                    exc.errors(), locs, strict=True)):
                return None, set_aside  # nothing to set aside without changing what the file means
            set_aside += locs
            data = _without(data, locs)
    return None, set_aside


def _without(data: Any, locs: list[tuple[Any, ...]]) -> Any:
    """A copy of `data` without the keys at `locs`."""
    def drop(node: Any, loc: tuple[Any, ...]) -> Any:
        if not loc:
            return node
        head, rest = loc[0], loc[1:]
        if isinstance(node, dict) and head in node:
            if not rest:
                return {k: v for k, v in node.items() if k != head}
            return {**node, head: drop(node[head], rest)}
        if isinstance(node, list) and isinstance(head, int) and head < len(node) and rest:
            return [drop(v, rest) if i == head else v for i, v in enumerate(node)]
        return node

    for loc in locs:
        data = drop(data, loc)
    return data


def _under(loc: tuple[Any, ...], prefix: tuple[Any, ...]) -> bool:
    return tuple(loc[:len(prefix)]) == tuple(prefix)


def _mentions(error: str, path: str) -> bool:
    return any(error.startswith(path + sep) or f" {path}{sep}" in error for sep in (":", ".", "[", " ", ")"))


def path_loc(path: str) -> tuple[Any, ...]:
    """'metadata.workers[1].port' -> ('metadata', 'workers', 1, 'port')."""
    loc: list[Any] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            loc.append(name)
        for index in filter(None, rest.replace("]", "").split("[")):
            loc.append(int(index) if index.isdigit() else index)
    return tuple(loc)


def load_topology(path: str | Path, env: Mapping[str, str] | None = None, backend: str | None = None) -> Topology:
    """The topology file, validated; `backend` (`--backend`) replaces the file's `backend:` before the
    checks run, so the topology is judged as it will be run."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"topology file {path} does not exist",
                          hint="pass one with -f FILE, or run from a directory holding topology.yaml")
    try:
        text = path.read_text()
        src = None if not text.strip() else read_yaml(text)
        data = None if src is None else src.data
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if data is None:  # empty, blank or comments only: most likely a truncated or mistyped file
        what = "is empty" if not text.strip() else "holds no settings (only comments)"
        raise ConfigError(f"{path}: the topology file {what}",
                          hint="to ask for every default, write a file holding the line `version: 1`")
    if backend is not None and isinstance(data, dict):
        data = {**data, "backend": backend}
    return parse_topology(data, str(path), env, base=path.parent.absolute(), yaml_source=src)

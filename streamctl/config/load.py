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
from streamctl.config.model import Topology
from streamctl.errors import ConfigError
from streamctl.tls.config import tls_errors

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def yaml_path(loc: tuple[Any, ...]) -> str:
    """('metadata', 'workers', 1, 'port') -> 'metadata.workers[1].port'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def interpolate(data: Any, env: Mapping[str, str], loc: tuple[Any, ...] = (),
                errors: list[str] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; `$$` is a literal `$`."""
    errors = [] if errors is None else errors
    if isinstance(data, dict):
        return {k: interpolate(v, env, (*loc, k), errors) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, (*loc, i), errors) for i, v in enumerate(data)]
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
            return ""
        return value

    return _VAR.sub(repl, data)


def _pydantic_messages(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "string_pattern_mismatch":
            msg = f"{err['input']!r} is not a valid name (lowercase letters, digits and '-' or '_')"
        elif err["type"] in ("greater_than_equal", "less_than_equal") and loc and loc[-1] == "port":
            msg = f"port {err['input']} is out of range (1-65535)"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        out.append(f"{yaml_path(loc)}: {msg}")
    return out


def parse_topology(data: Any, source: str = "<topology>", env: Mapping[str, str] | None = None,
                   base: Path | None = None) -> Topology:
    """Validate already-parsed YAML; raise ConfigError listing every problem with its YAML path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, not {type(data).__name__}")
    errors: list[str] = []
    data = interpolate(data, os.environ if env is None else env, errors=errors)
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        errors.extend(_pydantic_messages(exc))
        topology = None
    if topology is not None:
        errors.extend(semantic_errors(topology))
        errors.extend(tls_errors(topology, base or Path.cwd()))
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ConfigError(f"{source}: {len(errors)} {noun} in the topology",
                          hint="fix the file and run `streamctl validate -f FILE`",
                          details=[f"{source}: {e}" for e in errors])
    assert topology is not None
    return topology


def load_topology(path: str | Path, env: Mapping[str, str] | None = None) -> Topology:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"topology file {path} does not exist",
                          hint="pass one with -f FILE, or run from a directory holding topology.yaml")
    try:
        text = path.read_text()
        data = None if not text.strip() else yaml.safe_load(text)
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
    return parse_topology(data, str(path), env, base=path.parent.absolute())

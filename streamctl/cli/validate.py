"""`validate`: check a topology file and print OK or every error found."""

from __future__ import annotations

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt
from streamctl.config.load import load_topology
from streamctl.errors import ConfigError


def validate(file: FileOpt = DEFAULT_FILE, json_: JsonOpt = False) -> None:
    """Validate a topology file without touching anything.

    Example: streamctl validate -f examples/no-citus.yaml
    """
    try:
        topology = load_topology(file)
    except ConfigError as exc:
        if json_:
            render.print_json({"file": str(file), "ok": False, "errors": exc.details or [exc.message]})
        raise
    nodes = topology.nodes()
    if json_:
        render.print_json({"file": str(file), "ok": True, "cluster": topology.cluster,
                           "nodes": [n.name for n in nodes]})
    else:
        render.line(f"OK: {file} describes cluster {topology.cluster!r} with {len(nodes)} nodes "
                    f"({', '.join(n.name for n in nodes)})", "green")

"""Options shared by every command, and loading the cluster context from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streamctl.backends import select_backend
from streamctl.backends.base import Backend
from streamctl.config.load import load_topology
from streamctl.context import ClusterContext

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Topology file.", show_default=True)]
StateDirOpt = Annotated[str | None, typer.Option(
    "--state-dir", help="State directory root (default: the topology's state_dir, relative to the file).")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="Override the topology's backend: docker, swarm or local.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

DEFAULT_FILE = Path("topology.yaml")


def load_context(file: Path, state_dir: str | None = None) -> ClusterContext:
    topology = load_topology(file)
    return ClusterContext.build(topology, file.absolute(), state_dir)


def load_backend(ctx: ClusterContext, backend: str | None = None) -> Backend:
    if backend not in (None, "docker", "swarm", "local", "auto"):
        raise typer.BadParameter("must be docker, swarm, local or auto", param_hint="--backend")
    return select_backend(ctx, backend)

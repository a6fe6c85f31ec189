"""Options shared by every command, and loading the cluster context from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # imported where used: `validate` needs none of the backend machinery
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext
    from streamctl.events import Progress

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Topology file.", show_default=True)]
StateDirOpt = Annotated[str | None, typer.Option(
    "--state-dir", help="State directory root (default: the topology's state_dir, relative to the file).")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="Override the topology's backend: docker, swarm, local or external (a node's own "
                      "`backend:` still wins).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

DEFAULT_FILE = Path("topology.yaml")


def load_context(file: Path, state_dir: str | None = None) -> ClusterContext:
    from streamctl.config.load import load_topology
    from streamctl.context import ClusterContext

    topology = load_topology(file)
    return ClusterContext.build(topology, file.absolute(), state_dir)


def load_backend(ctx: ClusterContext, backend: str | None = None, progress: Progress | None = None) -> Backend:
    from streamctl.backends import BACKENDS, select_backend

    if backend not in (None, *BACKENDS):
        raise typer.BadParameter(f"must be one of {', '.join(BACKENDS)}", param_hint="--backend")
    return select_backend(ctx, backend, progress)

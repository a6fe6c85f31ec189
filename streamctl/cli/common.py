"""Options shared by every command, and loading the cluster context from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:  # imported where used: `validate` needs none of the backend machinery
    from streamctl.backends.base import Backend
    from streamctl.context import ClusterContext
    from streamctl.events import Progress

FileOpt = Annotated[Path, typer.Option("--file", "-f", help="Topology file.", show_default=True)]
StateDirOpt = Annotated[str | None, typer.Option(
    "--state-dir", help="State directory root (default: the topology's state_dir, relative to the file).")]
BackendName = Literal["docker", "swarm", "local", "external"]  # the choices --help lists; others exit 2
BackendOpt = Annotated[BackendName | None, typer.Option(
    "--backend", help="Override the topology's backend: docker, swarm, local or external (a node's own "
                      "`backend:` still wins).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Say more: also what was already in place.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a "
                                                          "terminal).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

DEFAULT_FILE = Path("topology.yaml")


def load_context(file: Path, state_dir: str | None = None, backend: str | None = None) -> ClusterContext:
    """The cluster of `file`; `--backend` (when given) replaces the file's `backend:` before validation."""
    from streamctl.backends import BACKENDS
    from streamctl.config.load import load_topology
    from streamctl.context import ClusterContext

    if backend not in (None, *BACKENDS):
        raise typer.BadParameter(f"must be one of {', '.join(BACKENDS)}", param_hint="--backend")
    topology = load_topology(file, backend=backend)
    return ClusterContext.build(topology, file.absolute(), state_dir)


def load_backend(ctx: ClusterContext, progress: Progress | None = None) -> Backend:
    from streamctl.backends import select_backend

    return select_backend(ctx, progress)


def share_with_subcommands(typer_ctx: typer.Context, *names: str) -> None:
    """Hand the group's options that were given (`shards -f prod.yaml --json hot`) to its subcommands as
    their defaults: a subcommand's own option still wins, and an option not given anywhere keeps its default.

    Click looks a subcommand's defaults up in its parent's `default_map[subcommand]`; the group's callback
    runs before the subcommand's context is made, so filling it here reaches every subcommand (and, through
    a nested group's own call, theirs)."""
    given = {n: typer_ctx.params[n] for n in names  # by name: Typer may carry its own copy of Click
             if getattr(typer_ctx.get_parameter_source(n), "name", "DEFAULT") != "DEFAULT"}
    if not given:
        return
    command: Any = typer_ctx.command
    current = dict(typer_ctx.default_map or {})
    for sub in command.list_commands(typer_ctx):
        current[sub] = {**(current.get(sub) or {}), **given}
    typer_ctx.default_map = current

"""`compose export`: write the docker-compose file equivalent to a topology (secrets stay out of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt
from streamctl.compose import compose_yaml
from streamctl.config.load import load_topology

app = typer.Typer(help="Export the cluster as a docker-compose file.\n\n"
                       "Example: streamctl compose export -o compose/docker-compose.yml", no_args_is_help=True)


@app.command()
def export(file: FileOpt = DEFAULT_FILE,
           output: Annotated[Path | None, typer.Option("--output", "-o",
                                                       help="Write here instead of stdout.")] = None) -> None:
    """Print (or write with -o) a compose file with the same containers, volumes, ports and network.

    Example: streamctl compose export -o compose/docker-compose.yml
    """
    text = compose_yaml(load_topology(file), source=file.name, base=file.parent)
    if output is None:
        render.console.print(text, end="", soft_wrap=True, markup=False, emoji=False, highlight=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    render.line(f"wrote {output}", "green")

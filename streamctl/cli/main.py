"""The `streamctl` command: registers the commands and renders errors once, at the top."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from streamctl import __version__
from streamctl.cli import cluster, nodes, render, validate
from streamctl.errors import ExitCode, StreamctlError

app = typer.Typer(
    name="streamctl",
    help="Provision, seed, verify and serve a streaming platform's data layer from one topology file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = {"on": False}


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
         version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    _debug["on"] = debug
    if version:
        render.line(f"streamctl {__version__}")
        raise typer.Exit()


app.command()(validate.validate)
app.command()(cluster.up)
app.command()(cluster.down)
app.command()(cluster.status)
app.command()(nodes.logs)
app.command()(nodes.psql)
app.command()(nodes.url)


def run() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except StreamctlError as exc:
        render.error(exc, debug)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        render.err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the single top-level place where anything unexpected lands
        render.unexpected(exc, debug)
        sys.exit(int(ExitCode.FAILURE))

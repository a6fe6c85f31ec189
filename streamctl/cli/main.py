"""The `streamctl` command: registers the commands and renders errors once, at the top."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from streamctl import __version__
from streamctl.cli import cluster, gateway, nodes, render, scale, seed, shards, validate, verify
from streamctl.cli import compose as compose_cli
from streamctl.errors import ExitCode, StreamctlError

app = typer.Typer(
    name="streamctl",
    help="Provision, seed, verify and serve a streaming platform's data layer from one topology file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        render.line(f"streamctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """--debug is read by run(), which renders errors once for every command."""


app.command()(validate.validate)
app.command()(cluster.up)
app.command()(cluster.down)
app.command()(cluster.status)
app.command()(nodes.logs)
app.command()(nodes.psql)
app.command()(nodes.url)
app.command()(gateway.gateway)
app.command()(seed.seed)
app.command()(verify.verify)
app.add_typer(shards.app, name="shards")
app.command()(scale.scale)
app.add_typer(compose_cli.app, name="compose")


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

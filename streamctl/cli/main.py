"""The `streamctl` command: registers the commands and renders errors once, at the top."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from streamctl import __version__
from streamctl.cli import render
from streamctl.cli.lazy import LazyCommand, LazyGroup
from streamctl.errors import ExitCode, StreamctlError


class _Commands(LazyGroup):
    """Every command, in help order; each module is imported only when its command runs."""

    lazy = {c.name: c for c in (
        LazyCommand("validate", "streamctl.cli.validate:validate"),
        LazyCommand("up", "streamctl.cli.cluster:up"),
        LazyCommand("down", "streamctl.cli.cluster:down"),
        LazyCommand("status", "streamctl.cli.cluster:status"),
        LazyCommand("logs", "streamctl.cli.nodes:logs"),
        LazyCommand("psql", "streamctl.cli.nodes:psql"),
        LazyCommand("url", "streamctl.cli.nodes:url"),
        LazyCommand("gateway", "streamctl.cli.gateway:gateway"),
        LazyCommand("seed", "streamctl.cli.seed:seed"),
        LazyCommand("verify", "streamctl.cli.verify:verify"),
        LazyCommand("metrics", "streamctl.cli.metrics:metrics"),
        LazyCommand("shards", "streamctl.cli.shards:app", is_group=True),
        LazyCommand("scale", "streamctl.cli.scale:scale"),
        LazyCommand("switchover", "streamctl.cli.ha:switchover"),
        LazyCommand("failover", "streamctl.cli.ha:failover"),
        LazyCommand("reinit", "streamctl.cli.ha:reinit"),
        LazyCommand("rotate-secrets", "streamctl.cli.secrets:rotate_secrets"),
        LazyCommand("backup", "streamctl.cli.backup:app", is_group=True),
        LazyCommand("restore", "streamctl.cli.backup:restore"),
        LazyCommand("compose", "streamctl.cli.compose:app", is_group=True),
    )}


app = typer.Typer(
    cls=_Commands,
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



def run() -> None:
    # Ctrl-C raises KeyboardInterrupt however streamctl was started. A non-interactive shell starts its
    # background jobs with SIGINT ignored (POSIX), CI runners inherit that, and Python keeps an inherited
    # ignore instead of installing its handler: `up` then ran to the end after SIGINT and exited 0.
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
    finally:  # the outcome is decided: a late Ctrl-C must not turn it into a traceback at exit
        signal.signal(signal.SIGINT, signal.SIG_IGN)

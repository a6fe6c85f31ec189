"""The `streamctl` executable's entry point: Ctrl-C is handled from its first instant, before the CLI's
imports (typer, rich: a few hundred milliseconds) run, also when SIGINT was inherited as ignored."""

from __future__ import annotations

import signal
import sys


def run() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from streamctl.cli.main import run as main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main()

"""Per-node commands: `logs`, `psql`, `url`."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated

import typer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, StateDirOpt, load_backend, load_context
from streamctl.config.model import Engine
from streamctl.errors import NotFoundError, PreflightError
from streamctl.status import node_logs

NodeArg = Annotated[str, typer.Argument(help="Node name, e.g. coordinator, worker-1, analytics-primary.")]


def logs(node: NodeArg, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
         backend: BackendOpt = None,
         tail: Annotated[int, typer.Option("--tail", "-n", help="Lines to show (0: all).")] = 100,
         follow: Annotated[bool, typer.Option("--follow", help="Keep printing new lines.")] = False) -> None:
    """Print a node's log.

    Example: streamctl logs analytics-primary -n 50
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend)
    n = ctx.node(node)
    for line in node_logs(be, n, tail, follow):
        render.raw_line(line)


def psql(node: NodeArg, args: Annotated[list[str] | None, typer.Argument(
             help="Arguments passed to psql (after --), e.g. -- -c 'select 1'.")] = None,
         file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, backend: BackendOpt = None,
         database: Annotated[str | None, typer.Option("--db", "-d", help="Database (default: the node's).")]
         = None) -> None:
    """Open psql on a PostgreSQL node (interactive, or with -c).

    Example: streamctl psql coordinator -- -c 'select count(*) from genres'
    """
    ctx = load_context(file, state_dir)
    be = load_backend(ctx, backend)
    n = ctx.node(node)
    if n.engine is not Engine.POSTGRES:
        raise NotFoundError(f"{node} is a {n.engine.value} node, not PostgreSQL",
                            hint=f"use `streamctl url {node}` with the {n.engine.value} client")
    password = "" if n.is_external else ctx.secrets["postgres_password"]  # external: from its own settings
    argv, env = be.psql_argv(n, ctx.topology.pg_user, password,
                             n.database or "postgres", list(args or []))
    try:
        proc = subprocess.run(argv, env={**os.environ, **env})
    except FileNotFoundError:
        raise PreflightError("psql is not installed", hint="apt-get install postgresql-client") from None
    raise typer.Exit(proc.returncode)


def url(node: NodeArg, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
        database: Annotated[str | None, typer.Option("--db", "-d", help="Database (default: the node's).")]
        = None) -> None:
    """Print a node's connection URI, credentials included (for scripts); with TLS on it carries
    sslmode=verify-full and the cluster CA's path (ssl_ca_certs for Redis, tlsCAFile for MongoDB).

    Example: psql "$(streamctl url analytics-primary)"
    """
    ctx = load_context(file, state_dir)
    n = ctx.node(node)
    if n.is_external and n.engine is Engine.POSTGRES:  # its password stays in the variable it came from
        info = conninfo_to_dict(ctx.pg_conninfo(node, database))
        info.pop("password", None)
        render.console.print(make_conninfo("", **info), soft_wrap=True, markup=False)
    elif n.engine is Engine.POSTGRES:
        render.console.print(ctx.pg_uri(node, database), soft_wrap=True, markup=False)
    elif n.engine is Engine.REDIS:
        render.console.print(ctx.redis_url(with_ca=True), soft_wrap=True, markup=False)
    else:
        render.console.print(ctx.mongo_uri(), soft_wrap=True, markup=False)

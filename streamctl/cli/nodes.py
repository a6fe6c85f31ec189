"""Per-node commands: `logs`, `psql`, `url`."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated

import typer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, BackendOpt, FileOpt, JsonOpt, StateDirOpt, load_backend, load_context
from streamctl.config.model import Engine
from streamctl.context import ClusterContext
from streamctl.errors import NotFoundError, PreflightError
from streamctl.status import node_logs

NodeArg = Annotated[str, typer.Argument(help="Node name, e.g. coordinator, worker-1, analytics-primary.")]


def logs(node: NodeArg, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
         backend: BackendOpt = None,
         tail: Annotated[int, typer.Option("--tail", "-n", help="Lines to show (0: all).")] = 100,
         follow: Annotated[bool, typer.Option("--follow", help="Keep printing new lines until Ctrl-C (docker, "
                                                               "swarm, local).")] = False) -> None:
    """Print a node's log, or follow it.

    Example: streamctl logs analytics-primary -n 50 --follow
    """
    ctx = load_context(file, state_dir, backend)
    be = load_backend(ctx)
    n = ctx.node(node)
    if n.is_external:
        raise NotFoundError(f"{node} is an external node: streamctl does not run it, so its log is where it runs",
                            hint="read it on its server")
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
    ctx = load_context(file, state_dir, backend)
    be = load_backend(ctx)
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


def url(node: Annotated[str | None, typer.Argument(
            help="Node name (default: every node, one `name uri` line each).")] = None,
        file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
        database: Annotated[str | None, typer.Option("--db", "-d", help="Database (default: the node's).")]
        = None) -> None:
    """Print the connection URI of a node, or of every node. Credentials are included, for scripts; with TLS
    on it carries sslmode=verify-full and the cluster CA's path (ssl_ca_certs for Redis, tlsCAFile for MongoDB).

    Example: psql "$(streamctl url analytics-primary)"
    Example: streamctl url --json | jq -r '.nodes.redis'
    """
    ctx = load_context(file, state_dir)
    names = [node] if node is not None else [n.name for n in ctx.topology.nodes()]
    uris = {name: _uri(ctx, name, database) for name in names}
    if json_:
        render.print_json(render.envelope(ctx.topology.cluster, 0, nodes=uris))
    elif node is not None:
        render.console.print(uris[node], soft_wrap=True, markup=False)
    else:
        width = max(len(n) for n in uris)
        for name, uri in uris.items():
            render.console.print(f"{name:<{width}}  {uri}", soft_wrap=True, markup=False)


def _uri(ctx: ClusterContext, node: str, database: str | None) -> str:
    n = ctx.node(node)
    if n.is_external and n.engine is Engine.POSTGRES:  # its password stays in the variable it came from
        info = conninfo_to_dict(ctx.pg_conninfo(node, database))
        info.pop("password", None)
        return make_conninfo("", **info)
    if n.engine is Engine.POSTGRES:
        return ctx.pg_uri(node, database)
    if n.engine is Engine.REDIS:
        return ctx.redis_url(with_ca=True)
    return ctx.mongo_uri()

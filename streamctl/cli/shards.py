"""`shards`: how the Citus tables are spread over the nodes (bars), or where one key lives; the shard
operations (rebalance, move, hot, isolate) are its subcommands."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.citus.shards import TableSpread, inspect_shards, locate_key
from streamctl.cli import render, shardops
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context, share_with_subcommands
from streamctl.errors import NotFoundError

BAR_WIDTH = 30


def _bar(value: int, top: int) -> str:
    cells = round(BAR_WIDTH * value / top) if top else 0
    return "█" * cells + "·" * (BAR_WIDTH - cells)


def _rows(spread: TableSpread) -> list[tuple[str, ...]]:
    top = max((n.rows for n in spread.nodes), default=0)
    skew = "" if spread.node_skew is None else f"{spread.node_skew:.2f}"
    return [(spread.table if i == 0 else "", n.node, str(n.shards), f"{n.rows:,}", render.size(n.bytes),
             _bar(n.rows, top), skew if i == 0 else "") for i, n in enumerate(spread.nodes)]


app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def shards(typer_ctx: typer.Context, file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None,
           json_: JsonOpt = False,
           table: Annotated[str | None, typer.Option("--table", "-t", help="Only this table.")] = None,
           key: Annotated[str | None, typer.Option(
               "--key", "-k", help="With --table: which shard and node hold this distribution value.")] = None
           ) -> None:
    """Shard distribution, and the operations on it. Without a subcommand: shards, rows and bytes per table
    and node, with skew (busiest node / mean). Subcommands plan and run shard operations: rebalance, move,
    hot, isolate. Options given before a subcommand (-f, --state-dir, --json) apply to it.

    Example: streamctl shards --table content_metadata --key "$CONTENT_ID"
    """
    if typer_ctx.invoked_subcommand is not None:
        share_with_subcommands(typer_ctx, "file", "state_dir", "json_")
        return
    ctx = load_context(file, state_dir)
    if key is not None:
        if table is None:
            raise NotFoundError("--key needs --table", hint="e.g. streamctl shards --table content_metadata "
                                                            "--key <content_id>")
        loc = locate_key(ctx, table, key)
        if json_:
            render.print_json(loc.to_json())
        else:
            where = ", ".join(loc.nodes)
            render.line(f"{table} key {key}: shard {loc.shard_id} ({loc.shard_name}) on {where}")
        return
    spreads = inspect_shards(ctx, table)
    if json_:
        render.print_json({"cluster": ctx.topology.cluster, "tables": [s.to_json() for s in spreads]})
        return
    rows = [r for s in spreads if s.kind == "distributed" for r in _rows(s)]
    render.table(f"{ctx.topology.cluster}: distributed tables (rows per node)",
                 ["table", "node", "shards", "rows", "bytes", "spread", "node skew"], rows)
    refs = [(s.table, s.kind, f"{s.rows:,}", render.size(s.bytes), ", ".join(n.node for n in s.nodes))
            for s in spreads if s.kind != "distributed"]
    if refs:
        render.table("reference tables (one copy per node)", ["table", "kind", "rows", "bytes", "nodes"],
                     refs)


app.add_typer(shardops.rebalance_app, name="rebalance")
app.command()(shardops.move)
app.command()(shardops.hot)
app.command()(shardops.isolate)

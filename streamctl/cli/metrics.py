"""`metrics`: the figures GET /metrics serves, collected once, for a terminal or a CI log."""

from __future__ import annotations

from typing import Annotated

import typer

from streamctl.cli import render
from streamctl.cli.common import DEFAULT_FILE, FileOpt, JsonOpt, StateDirOpt, load_context


def metrics(file: FileOpt = DEFAULT_FILE, state_dir: StateDirOpt = None, json_: JsonOpt = False,
            prometheus: Annotated[bool, typer.Option("--prometheus", help="Print the Prometheus text format "
                                                     "(e.g. for node_exporter's textfile collector).")] = False
            ) -> None:
    """Collect the platform's metrics once. Nodes up, replication lag, Citus shards and skew, row estimates,
    Redis views and trending, the last stored verify. Every probe is bounded: a stopped node reads 0.

    Example: streamctl metrics --json | jq '.nodes[] | select(.up | not)'
    """
    from streamctl.metrics.collect import collect
    from streamctl.metrics.families import families, prometheus_text
    from streamctl.verify.last import LastVerifyFile

    ctx = load_context(file, state_dir)
    snap = collect(ctx)
    verify = LastVerifyFile(ctx.store.root)()
    if json_:
        render.print_json({**snap.to_json(), "verify": None if verify is None else
                           {"finished_at": verify.finished_at, "checks": verify.checks}})
        return
    if prometheus:
        render.raw_line(prometheus_text(snap, ctx.topology.cluster, verify).rstrip("\n"))
        return
    rows = [(s.name, ", ".join(f"{k}={v}" for k, v in s.labels.items()), f"{s.value:g}")
            for family in families(snap, ctx.topology.cluster, verify) for s in family.samples]
    render.table(f"metrics {ctx.topology.cluster}", ["metric", "labels", "value"], rows)
    for section, why in snap.errors.items():
        render.note(f"{section}: {why}")

"""`up --adopt`: what taking over another state directory's nodes needs before anything changes. Their
data keeps the passwords it was initialised with, so this state directory must hold the owner's secrets;
new ones would lock the data away (PostgreSQL and MongoDB set the superuser's password only at init)."""

from __future__ import annotations

from streamctl.backends.base import Backend, NodeState
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.errors import ForeignError, NotFoundError
from streamctl.plan import NodeStep


def check_adopt(ctx: ClusterContext, backend: Backend, steps: list[NodeStep]) -> None:
    """The owner's secrets are in this state directory (or fixed in the topology) and, where a node being
    taken over runs, its PostgreSQL accepts them; raises ForeignError naming what is needed otherwise."""
    root = ctx.store.root
    try:
        secrets = ctx.store.secrets(ctx.topology)
    except NotFoundError:
        raise ForeignError(f"`up --adopt` needs the owner's secrets, and {root} has none: new passwords "
                           "would lock the owner's data away; nothing was changed",
                           hint=f"copy the owner's secrets.json (in the state directory the refusal named) to "
                                f"{root}/secrets.json with mode 0600, or fix every secret under `secrets:` in "
                                "the topology, then run `streamctl up --adopt` again") from None
    import psycopg

    for step in steps:
        if not (step.observation.takeover and step.node.is_postgres
                and step.observation.state is NodeState.RUNNING):
            continue
        ep = backend.endpoint(step.node)
        try:  # the owner's certificates are not signed by our CA: TLS without verification, for this check
            dsn = pg_engine.conninfo(host=ep.host, port=ep.port, user=ctx.topology.pg_user, dbname="postgres",
                                     password=secrets["postgres_password"], connect_timeout=5, sslmode="prefer")
            psycopg.connect(dsn).close()
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise ForeignError(f"`up --adopt`: the secrets in {root} do not open {step.node.name} (password "
                                   "authentication failed): they are not the owner's; nothing was changed",
                                   hint=f"copy the owner's secrets.json to {root}/secrets.json (mode 0600) and "
                                        "run `streamctl up --adopt` again") from None

"""WAL archiving into the backup repository (when the topology has a `backup:` section): per backed-up
node, its pgBackRest stanza, then archive_command (engine knowledge: streamctl.backup)."""

from __future__ import annotations

from functools import partial

from streamctl.backends.base import Backend
from streamctl.backup import archiving
from streamctl.backup.pgbackrest import PgBackRest
from streamctl.context import ClusterContext
from streamctl.steps import ConfigStep


def steps(ctx: ClusterContext, backend: Backend) -> list[ConfigStep]:
    """Adapter: one archiving step per coordinator, worker and analytics primary, after its database."""
    if not ctx.topology.backup_on:
        return []
    tool = PgBackRest(ctx, backend)
    return [ConfigStep(st.node.name, "wal archiving", partial(archiving.pending, tool, st),
                       partial(archiving.apply, tool, st), after=())
            for st in tool.stanzas()]

"""What turning ha on or off for a node that holds data means on every backend (#27 item 6): the node's own
data becomes its group's leader (never a fresh one beside it) and standbys are cloned from it; turning it off
keeps the data of the node's own member, which must lead. The backends' own steps are in
backends/local/ha_convert.py and backends/docker/ha_convert.py; the files and refusals they share are here."""

from __future__ import annotations

from streamctl.config.members import Group
from streamctl.config.model import Node
from streamctl.errors import RefusedError

OFF_MARKER = "ha-off"  # beside the node's data: its member was checked to lead, Patroni is being taken off
# What Patroni leaves in a data directory that a plain server does not want (its own settings come back).
PATRONI_FILES = ("patroni.dynamic.json", "standby.signal", "recovery.signal", "postgresql.conf.backup",
                 "pg_hba.conf.backup", "pg_ident.conf.backup")


def standbys_hold_data(group: Group, held: list[str], where: str) -> RefusedError | None:
    """Refused before anything changes: a standby whose place already holds data would not be cloned from the
    node's data (Patroni would take it for a member of the group). `where`: how to remove them."""
    if not held:
        return None
    return RefusedError(f"turning ha on for {group.node.name}, which holds data: the standbys' data must be empty "
                        f"to be cloned from it, and {', '.join(held)} already hold data",
                        hint=f"remove {where} (a standby's copy, not the node's data), then run `streamctl up` again")


def not_answering(name: str, who: str) -> RefusedError:
    return RefusedError(f"turning ha off for {name}: {who} does not answer, and only it can say which member leads "
                        "(whose data stays the node)",
                        hint="put the ha section back and run `streamctl up`, then remove it again")


def not_leading(name: str, leader: str | None) -> RefusedError:
    return RefusedError(f"turning ha off for {name}: {leader or 'another member'} leads it, and its data is not "
                        f"{name}'s own (the node keeps its own member's data)",
                        hint=f"put the ha section back, run `streamctl switchover {name} --to {name}`, then remove "
                             "it again")


def mode_refusal(node: Node, was_ha: bool, under_ha: bool) -> RefusedError | None:
    """Turning HA on for a node that ran without Patroni, or off for a group Patroni runs: not built yet on
    Swarm (the local and Docker backends convert: their ha_convert.py)."""
    if under_ha and not was_ha:
        return RefusedError(f"{node.name} holds data made without ha, and turning ha on for existing data is not "
                            "built yet", hint="remove the ha section, or start from `streamctl down --volumes`")
    if not under_ha and was_ha:
        return RefusedError(f"{node.name} is run by Patroni (the topology had an ha section), and turning ha off is "
                            "not built yet", hint="put the ha section back")
    return None

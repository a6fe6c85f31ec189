"""Turning ha on for a Citus node or the analytics primary that already holds data, and off again (#27 item 6),
as local processes.

On: the node's own data directory becomes its group's leader, never a fresh one beside it. While it still runs
as a plain server, the roles Patroni logs in as are made (ha/roles.py; the superuser is the cluster's), a
checkpoint is taken and it stops cleanly. Then `up` writes Patroni's configuration beside it and starts the
group (GroupRecipe.start): the member that holds data first; Patroni finds a data directory and no cluster
in the DCS yet and registers it there as the group's leader (Patroni's "convert a standalone"), keeping its
postgresql.conf as postgresql.base.conf and writing pg_hba.conf itself; only once it leads do the standbys
start, and clone from it. Each of those steps is safe to run again, so an `up` stopped halfway is finished by
the next one.

Off: only when the node's own member leads (its data directory stays the node). The standbys' Patroni stop
first, so that none can be promoted, then the leader's; the data directory gets its own configuration back,
the standbys' directories go, and etcd with them once no group is left under Patroni. A marker written once
the leader is checked lets an interrupted `up` finish without asking Patroni again."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from streamctl.backends.local.ha import BEFORE_HA, alive, etcd_root, stop_all
from streamctl.backends.local.privileges import RunAs
from streamctl.backends.local.recipes import Recipe, Runner
from streamctl.config.members import Group
from streamctl.config.model import Node
from streamctl.errors import RefusedError
from streamctl.ha import runtime
from streamctl.ha.convert import OFF_MARKER, PATRONI_FILES, not_answering, not_leading, standbys_hold_data
from streamctl.ha.roles import ensure_patroni_roles
from streamctl.readiness import Readiness


def standalone(node_dir: Path) -> bool:
    """The node holds data made without ha (a plain server's data directory, no Patroni configuration)."""
    return (node_dir / "data" / "PG_VERSION").exists() and not patroni_made(node_dir)


def patroni_made(node_dir: Path) -> bool:
    return (node_dir / "patroni.yml").exists()


def on_refusal(group: Group, member_dir: Callable[[str], Path]) -> RefusedError | None:
    """Before anything changes: a standby's directory that already holds data would not be cloned from the
    node's data (Patroni would take it for a member of the group), so it is refused."""
    held = [m.name for m in group.members[1:] if (member_dir(m.name) / "data" / "PG_VERSION").exists()]
    return standbys_hold_data(group, held, ", ".join(str(member_dir(n)) for n in held))


def refusal(node: Node, node_dir: Path, group: Group | None, member_dir: Callable[[str], Path]) -> RefusedError | None:
    """What `up` refuses before anything changes when the topology turns ha on or off for this node (a Citus
    node or the analytics primary: its logical slots survive, Patroni's `ignore_slots` names them, and the
    replicas' subscriptions and the coordinator's FDW server are re-pointed by the configuration steps, which
    compare their connection with the group's members)."""
    if group is not None and standalone(node_dir):
        return on_refusal(group, member_dir)
    if group is None and patroni_made(node_dir):
        return off_refusal(node, node_dir)
    return None


def adopt(plain: Recipe, connect: Callable[[], Any], ha_secrets: dict[str, str], run: Runner,
          run_as: RunAs) -> None:
    """The plain server made ready for Patroni and stopped: Patroni's roles, a checkpoint, a clean stop (the
    server is started first when an earlier `up` stopped it halfway)."""
    runtime.patroni_bin(create=True)
    if not plain.running_pid():
        plain.clear_stale()
        plain.start(run, run_as)

    def answers() -> bool:
        with connect() as conn:
            conn.execute("SELECT 1")
        return True

    Readiness(f"{plain.node.name} (its data, before Patroni takes it)", answers, 60.0, interval=0.3,
              hint=f"see `streamctl logs {plain.node.name}`").wait()
    with connect() as conn:
        ensure_patroni_roles(conn, ha_secrets)
        conn.execute("CHECKPOINT")
    stop_all(plain.pids, plain.stop_signal, plain.node.name)


def _rest(config: dict[str, Any], path: str) -> Any:
    """GET from the REST API a member's patroni.yml names (over TLS with its CA when it has one)."""
    api = config["restapi"]
    ca = api.get("cafile")
    url = f"{'https' if ca else 'http'}://{api['connect_address']}{path}"
    context = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(url, timeout=3, context=context) as response:  # noqa: S310
        return json.loads(response.read())


def _member_dirs(node: Node, node_dir: Path, home: Path) -> list[Path]:
    """The node's own member first, then its standbys' directories (nodes/NAME-2, ...)."""
    return [node_dir, *sorted(p for p in (home / "nodes").glob(f"{node.name}-*") if p.name[len(node.name) + 1:]
                              .isdigit())]


def off_refusal(node: Node, node_dir: Path) -> RefusedError | None:
    """Turning ha off keeps the data of the node's own member: refused unless Patroni says it leads."""
    if (node_dir / OFF_MARKER).exists():
        return None
    config = yaml.safe_load((node_dir / "patroni.yml").read_text())
    try:
        members = _rest(config, "/cluster").get("members", [])
    except (OSError, ValueError):
        return not_answering(node.name, "Patroni")
    leader = next((m["name"] for m in members if m.get("role") == "leader"), None)
    return None if leader == config["name"] else not_leading(node.name, leader)


def _patroni(member_dir: Path) -> list[int]:
    return [p for p in [alive(member_dir / "run" / "patroni.pid", "patroni")] if p]


def release(node: Node, node_dir: Path, home: Path, run_as: RunAs) -> None:
    """Patroni taken off the node: standbys stopped and removed, the leader's data given its own settings."""
    refusal = off_refusal(node, node_dir)
    if refusal is not None:
        raise refusal
    (node_dir / OFF_MARKER).write_text("the node's member led when ha was turned off\n")
    dirs = _member_dirs(node, node_dir, home)
    for d in (*dirs[1:], dirs[0]):  # the standbys first: with the leader stopped first, one could be promoted
        stop_all(partial(_patroni, d), signal.SIGTERM, f"{d.name}'s Patroni")
    data = node_dir / "data"
    base = data / "postgresql.base.conf"
    if base.exists():
        text = base.read_text()
        if "streamctl.conf" not in text:  # a data directory Patroni made itself (initdb)
            text += "\ninclude_if_exists = 'streamctl.conf'\n"
        (data / "postgresql.conf").write_text(text)
        run_as.chown(data / "postgresql.conf")
        base.unlink()
    for name in (BEFORE_HA, *PATRONI_FILES):
        (data / name).unlink(missing_ok=True)
    for d in dirs[1:]:
        shutil.rmtree(d, ignore_errors=True)
    for name in ("patroni.yml", "pgpass", "run/patroni.pid"):
        (node_dir / name).unlink(missing_ok=True)
    if not any((home / "nodes").glob("*/patroni.yml")):  # no group left under Patroni: its DCS goes
        etcd = etcd_root(home)
        stop_all(lambda: [p for f in etcd.glob("*/etcd.pid") if (p := alive(f, "etcd"))], signal.SIGTERM, "etcd")
        shutil.rmtree(etcd, ignore_errors=True)
    (node_dir / OFF_MARKER).unlink()

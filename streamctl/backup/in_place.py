"""`streamctl restore --in-place`: the running cluster itself recovered to a restore point.

Every node is stopped, and the data of every PostgreSQL node and of Redis is moved aside (never deleted:
`<data>.before-restore-<time>` beside it, listed in the result for the user to remove once satisfied).
The groups of the set are then recovered into their own places, exactly as into a new cluster (same
ports, so Citus's catalog already names the right nodes); the analytics replicas are restored from their
primary's backup (replicas.py) and `up` subscribes them again without the initial copy; Redis starts from
the set's snapshot. `up` finishes, `verify` judges. If anything fails before `up`, the restored files are
removed and the data moved aside is put back: the cluster is as it was, stopped, and `streamctl up`
starts it. Archiving goes on in the same stanzas, on the new timeline the recovery opened.

Under HA (the Citus groups) every member's Patroni stops with the cluster; each group's standbys' directories,
the node's Patroni configuration and etcd's data are kept aside too, so that `up` finds each node holding
plain data and no group in a fresh etcd: it makes the restored data the group's leader and clones the
standbys from it (backends/local/ha_convert.py).

On the Docker backend the same steps keep each PostgreSQL node's and Redis's volume (under HA also the
standbys' and etcd's) aside as a copy, `<volume>-before-restore-<time>`, and remove the original, so the restore
recreates it as for a new cluster with the same names (docker_aside.py; under HA the node's volume holds the
restored data where its member's Patroni finds it, and `up` makes it the group's leader); a failure copies it
back.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.backup import docker_aside, ha
from streamctl.backup.pgbackrest import BackupError, PgBackRest
from streamctl.backup.restore import RestoreResult, Selection, finish, restore_data
from streamctl.backup.take import list_sets
from streamctl.config.model import Engine, Role
from streamctl.errors import RefusedError
from streamctl.events import Emit, Event, ignore

if TYPE_CHECKING:
    from collections.abc import Callable

    from streamctl.backends.local.backend import LocalBackend
    from streamctl.context import ClusterContext

ASIDE = ".before-restore-"


def restore_in_place(ctx: ClusterContext, backend: Any, selection: Selection, emit: Emit = ignore,
                     timeout: float = 120.0) -> RestoreResult:
    """Recover the cluster `ctx` itself to the chosen set's restore point (the caller holds its lock); the
    local or the Docker backend (refuse_unsupported says which clusters)."""
    from streamctl.runner import Runner

    tool = PgBackRest(ctx, backend)
    chosen, how = selection.choose(list_sets(tool))
    missing = [b.node for b in chosen.nodes if ctx.topology.node(b.node) is None]
    if missing:
        raise RefusedError(f"the set holds {', '.join(missing)}, which the topology no longer has; nothing "
                           "was changed", hint="restore it into a new cluster with --into NAME")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    docker = getattr(backend, "name", "") == "docker"
    kept = f"its volume is kept aside as *{docker_aside.ASIDE}" if docker else f"its data is kept aside as *{ASIDE}"
    emit(Event("info", "*", "restore", f"in place: every node stops; {kept}{stamp}"))
    Runner(ctx, backend, emit=emit, timeout=timeout).down()
    kept_aside, put_back = (_volumes_aside if docker else _dirs_aside)(ctx, backend, stamp, emit)
    try:
        result = restore_data(tool, chosen, how, ctx, backend, emit, discard=False)
    except BaseException:
        put_back()
        raise
    result.topology_file = ctx.topology_path
    result.kept_aside = kept_aside
    return finish(result, ctx, backend, emit, timeout)


def _dirs_aside(ctx: ClusterContext, backend: LocalBackend, stamp: str,
                emit: Emit) -> tuple[list[str], Callable[[], None]]:
    """The local backend: what was kept aside (paths), and how to put it back."""
    moved = _move_aside(ctx, backend, stamp, emit)
    return [str(aside) for _, aside in moved], lambda: _put_back(moved, emit)


def _volumes_aside(ctx: ClusterContext, backend: Any, stamp: str,
                   emit: Emit) -> tuple[list[str], Callable[[], None]]:
    """The Docker backend: what was kept aside (volumes, with the command that removes each), and how to put
    it back."""
    moved = docker_aside.move_aside(ctx, backend, stamp, emit)
    return [a.listing for a in moved], lambda: docker_aside.put_back(backend, moved, emit)


def _move_aside(ctx: ClusterContext, backend: LocalBackend, stamp: str, emit: Emit) -> list[tuple[Path, Path]]:
    """Every PostgreSQL node's and Redis's data directory renamed beside itself (same filesystem: instant);
    under HA also what would keep Patroni from taking the restored data as each group's leader (ha.py)."""
    moved: list[tuple[Path, Path]] = []
    for node in ctx.topology.nodes():
        if node.is_external or not (node.is_postgres or node.engine is Engine.REDIS):
            continue
        for path in (backend.data_dir(node), *ha.patroni_paths(ctx.topology, backend, node)):
            if not path.exists():
                continue
            aside = path.with_name(path.name + ASIDE + stamp)
            path.rename(aside)
            moved.append((path, aside))
            emit(Event("info", node.name, "restore", f"kept at {aside}"))
    moved += [(p, a) for p, a in [ha.etcd_aside(ctx.topology, backend, ASIDE + stamp)] if a is not None]
    return moved


def _put_back(moved: list[tuple[Path, Path]], emit: Emit) -> None:
    """After a failed restore: the restored files removed, each data directory back where it was."""
    for data, aside in moved:
        if data.is_dir():
            shutil.rmtree(data, ignore_errors=True)
        aside.rename(data)
    if moved:
        emit(Event("info", "*", "restore", "the restore failed: every node's data is back as it was (stopped; "
                                           "`streamctl up` starts it)"))


def refuse_unsupported(ctx: ClusterContext, backend_name: str) -> None:
    """In place restores clusters of the local and Docker backends (with or without HA); it only reads the
    topology, so the CLI asks it before the lock and the confirmation."""
    if backend_name not in ("local", "docker"):
        raise RefusedError(f"--in-place restores clusters on the local and Docker backends; this one runs on "
                           f"{backend_name}; nothing was changed", hint="restore into a new cluster with --into NAME")
    if any(n.role is Role.ANALYTICS_PRIMARY and n.is_external for n in ctx.topology.nodes()):
        raise BackupError("--in-place cannot restore an external analytics primary")

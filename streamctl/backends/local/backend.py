"""Local backend: every node is a process of the machine's own binaries, data under the state directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from streamctl.atomic import write_file
from streamctl.backends.base import Action, NodeState, Notify, Observation, fingerprint, group_ready, node_readiness
from streamctl.backends.local import ha_convert, recipes
from streamctl.backends.local.data_home import DataHome, data_home
from streamctl.backends.local.ha import Etcd, GroupRecipe, stop_all
from streamctl.backends.local.pg_install import check_postgres_install
from streamctl.backends.local.privileges import RunAs, check_traversable, resolve_run_as
from streamctl.backends.local.tls_files import install_tls
from streamctl.config.members import Group, Member, ha_groups, may_lead, member_addresses
from streamctl.config.model import Engine, Node, Topology
from streamctl.context import ClusterContext
from streamctl.engines import postgres as pg_engine
from streamctl.engines.tls import server_files
from streamctl.errors import BackendError, PreflightError
from streamctl.ha.patroni import MemberPaths
from streamctl.ha.secrets import ha_secrets
from streamctl.ownership import MARKER, parse_marker
from streamctl.readiness import Readiness
from streamctl.state import Endpoint


class LocalBackend:
    """Runs PostgreSQL (as an unprivileged user when we are root), Redis and mongod as local processes."""

    name = "local"

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.topology: Topology = ctx.topology
        self._run_as: RunAs | None = None
        self._bindir: Path | None = None

    # -- resolution of binaries and users -----------------------------------------------------------
    @property
    def run_as(self) -> RunAs:
        if self._run_as is None:
            self._run_as = resolve_run_as(self.topology.local.run_as)
        return self._run_as

    @property
    def pg_bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = recipes.find_pg_bindir(self.topology.local.pg_bindir)
        return self._bindir

    def preflight(self, nodes: list[Node]) -> None:
        if self._groups and shutil.which("etcd") is None:
            raise PreflightError("etcd is not on PATH but the topology has an ha section",
                                 hint="install etcd-server (./scripts/install does), or remove the ha section")
        for node in (n for n in nodes if may_lead(self.topology, n)):
            refusal = ha_convert.refusal(node, self._dir(node), self._groups.get(node.name), self.home.nodes.joinpath)
            if refusal is not None:
                raise refusal
        engines = {n.engine for n in nodes}
        if Engine.POSTGRES in engines:
            check_postgres_install(self.pg_bindir, self.topology)
            # No side effect here (a dry run preflights too): a user still to be created is only assumed.
            run_as = self._run_as or resolve_run_as(self.topology.local.run_as, create=False)
            check_traversable(run_as, self.home.path)
        for engine, binary, pkg in ((Engine.REDIS, "redis-server", "redis-server"),
                                    (Engine.MONGO, "mongod", "MongoDB's mongodb-org-server")):
            if engine in engines and shutil.which(binary) is None:
                role = "redis" if engine is Engine.REDIS else "mongo"
                raise PreflightError(f"{binary} is not on PATH but the topology enables {role}",
                                     hint=f"install {pkg}, use the Docker backend, or set "
                                          f"{role}.enabled: false")

    @cached_property
    def home(self) -> DataHome:
        """Where node data lives (the state directory, or /var/lib/streamctl/... when root must move it)."""
        run_as = self._run_as or resolve_run_as(self.topology.local.run_as, create=False)
        return data_home(self.ctx.store.root, run_as)

    def prepare(self, changes: list[tuple[Node, Action]], notify: Notify) -> None:
        """Says once, when it first happens, that node data goes outside the state directory."""
        if self.home.relocated and not self.home.path.exists() and any(a is Action.CREATE for _, a in changes):
            self.home.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            self.home.path.mkdir(mode=0o755, exist_ok=True)
            notify("*", f"node data goes to {self.home.path}: {self.home.reason}; state stays in "
                        f"{self.ctx.store.root}; `down --volumes` removes both")

    # -- observation ------------------------------------------------------------------------------
    def _dir(self, node: Node) -> Path:
        return self.home.nodes / node.name

    def _secrets(self) -> dict[str, str]:
        return self.ctx.store.known_secrets(self.topology)

    @cached_property
    def _groups(self) -> dict[str, Group]:
        return {g.node.name: g for g in ha_groups(self.topology)}

    def _recipe(self, node: Node) -> recipes.Recipe:
        if node.name not in self._groups:
            return self._plain(node)
        tls_fp = self.ctx.tls.node_fingerprint(node) if self.ctx.tls_on else None
        return GroupRecipe(node, self._dir(node), self.topology, self._secrets(), self.pg_bindir, tls_fp,
                           self._groups[node.name], self.home.path, self.ctx.store.root)

    def _plain(self, node: Node) -> recipes.Recipe:
        """The node as a server of its own, without Patroni (under HA: its data before `up` converts it)."""
        tls_fp = self.ctx.tls.node_fingerprint(node) if self.ctx.tls_on else None
        return recipes.recipe_for(node, self._dir(node), self.topology, self._secrets(),
                                  self.pg_bindir if node.is_postgres else None, tls_fp)

    def _install_tls(self, node: Node, run_as: RunAs) -> None:
        install_tls(self._dir(node) / "tls", server_files(node.engine.value, self.ctx.tls.for_node(node)), run_as)

    def persist_secrets(self, node: Node) -> None:
        """After a rotation, the files that hold a secret get the current value: Redis's configuration, and under
        HA each member's Patroni configuration (the superuser's password; PostgreSQL's own is in its catalogue)."""
        if node.engine is Engine.REDIS or node.name in self._groups:
            self._recipe(node).write_config(self.run_as if node.is_postgres else RunAs(None, os.getuid(), os.getgid()))

    def data_dir(self, node: Node) -> Path:
        """A PostgreSQL node's data directory (pgBackRest's pg1-path)."""
        return self._recipe(node).data_dir

    def member_paths(self, node: Node, member: Member) -> MemberPaths:
        """Where one member of a group under HA keeps its files (pgBackRest lists every member of the stanza)."""
        recipe = self._recipe(node)
        assert isinstance(recipe, GroupRecipe)
        return recipe.paths(member)

    def socket_dir(self, node: Node) -> Path | None:
        """Where a PostgreSQL node's Unix socket is as a plain server (None when the path is too long for one)."""
        line = next(x for x in self._plain(node).config_text().splitlines() if x.startswith("unix_socket"))
        value = line.split("=", 1)[1].strip().strip("'")
        return Path(value) if value else None

    def config_text(self, node: Node) -> str:
        """The node's managed settings file (streamctl.conf) as a plain server's `apply` writes it (a group's
        node under HA too: a restore starts its data so, before `up` makes it the group's leader)."""
        return self._plain(node).config_text()

    def desired_fingerprint(self, node: Node) -> str:
        return fingerprint(self._recipe(node).definition)

    def _owner(self, node: Node, initialized: bool) -> str:
        """Whose the node's directory is, from its marker: "" when ours (or empty: no data to protect), else
        what `up` takes over; raises ForeignError when another state directory's instance owns it."""
        marker = self._dir(node) / MARKER
        if marker.exists():
            found, owner_dir = parse_marker(marker.read_text())
        elif initialized:
            found, owner_dir = None, None  # data made before instance ids
        else:
            return ""
        if self.ctx.ownership.check(f"the data of {node.name} ({self._dir(node)})", found, owner_dir):
            return ""
        return f"instance {found}" if found else "a node directory without an instance id"

    def observe(self, node: Node) -> Observation:
        recipe = self._recipe(node)
        initialized = recipe.initialized()
        takeover = self._owner(node, initialized)
        if not initialized:
            return Observation(node.name, NodeState.MISSING)
        fp_file = self._dir(node) / ".fingerprint"
        fp = fp_file.read_text().strip() if fp_file.exists() else None
        pid = recipe.running_pid()
        state = NodeState.RUNNING if pid else NodeState.DEGRADED if recipe.pids() else NodeState.STOPPED
        return Observation(node.name, state, recipe.made_as(fp), recipe.detail(), takeover)

    # -- changes ----------------------------------------------------------------------------------
    def apply(self, node: Node, action: Action) -> None:
        recipe = self._recipe(node)
        node_dir = self._dir(node)
        run_as = self.run_as if node.is_postgres else RunAs(None, os.getuid(), os.getgid())
        if action is Action.NOOP:
            return
        rolling = action is Action.RECREATE and isinstance(recipe, GroupRecipe) and recipe.settled()
        self._convert(node, run_as)
        if action is Action.RECREATE and not rolling:  # a settled group's members restart one at a time instead
            self.stop(node)
        if action is Action.CREATE:
            node_dir.mkdir(parents=True, exist_ok=True)
            run_as.chown(node_dir)
            recipe.initialize(lambda argv: self._run(argv, run_as, f"initialize {node.name}"), run_as)
        (node_dir / MARKER).write_text(self.ctx.ownership.marker())  # this state directory's, from now on
        if self.ctx.tls_on:
            self._install_tls(node, run_as)
            recipe = self._recipe(node)  # its fingerprint now names the certificates just installed
        recipe.write_config(run_as)
        if rolling and isinstance(recipe, GroupRecipe) and not recipe.roll(
                self.ctx, lambda argv: self._run(argv, run_as, f"start {node.name}"), run_as):
            self.stop(node)  # no longer settled meanwhile: every member at once
        (node_dir / ".fingerprint").write_text(fingerprint(recipe.definition) + "\n")
        if recipe.running_pid():
            return
        recipe.clear_stale()
        recipe.start(lambda argv: self._run(argv, run_as, f"start {node.name}", tail=lambda: self.logs(node, 20)),
                     run_as)

    def _convert(self, node: Node, run_as: RunAs) -> None:
        """ha turned on for a node that holds data (it becomes its group's leader), or off (ha_convert.py)."""
        node_dir = self._dir(node)
        if node.name in self._groups and ha_convert.standalone(node_dir):
            if self.ctx.tls_on:  # restored data starts once as a plain server before Patroni takes it
                self._install_tls(node, run_as)
            ha_convert.adopt(self._plain(node), lambda: self.ctx.pg_connect(node.name, "postgres"),
                             ha_secrets(self.ctx.store.root, create=True),
                             lambda argv: self._run(argv, run_as, f"start {node.name}"), run_as)
        elif node.name not in self._groups and ha_convert.patroni_made(node_dir):
            ha_convert.release(node, node_dir, self.home.path, run_as)

    def _run(self, argv: list[str], run_as: RunAs, what: str,
             tail: Callable[[], list[str]] | None = None) -> None:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, start_new_session=True,
                                  stdin=subprocess.DEVNULL, timeout=300, **run_as.subprocess_kwargs())
        except FileNotFoundError as exc:
            raise BackendError(f"{what}: {exc.filename} not found") from None
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            if tail is not None:
                out += ["last log lines:", *tail()]
            raise BackendError(f"{what} failed (exit {proc.returncode})", details=out)

    def stop(self, node: Node) -> None:
        recipe = self._recipe(node)
        stop_all(recipe.pids, recipe.stop_signal, node.name)

    def remove(self, node: Node, volumes: bool) -> None:
        recipe = self._recipe(node)
        if volumes and isinstance(recipe, GroupRecipe):
            recipe.stop_for_good(lambda argv, what: self._run(argv, self.run_as, what))
        else:  # data that goes needs no clean shutdown (a checkpoint, its last WAL archived): immediate
            stop_all(recipe.pids, signal.SIGQUIT if volumes and node.is_postgres else recipe.stop_signal, node.name)
        if volumes:
            for path in recipe.dirs():
                shutil.rmtree(path, ignore_errors=True)
            Etcd(self.topology, self.home.path).forget(self._groups.get(node.name))

    def release_group(self, node: Node) -> None:
        """Under HA, a group about to leave Citus: its Patroni stopped (its PostgreSQL still serving the
        unregistration) and its keys removed from etcd, so no Patroni registers it again."""
        recipe = self._recipe(node)
        if isinstance(recipe, GroupRecipe):
            recipe.release()
            Etcd(self.topology, self.home.path).forget(self._groups.get(node.name))

    def teardown(self, volumes: bool) -> None:
        if self._groups:  # the groups are stopped: their DCS goes too
            etcd = Etcd(self.topology, self.home.path)
            etcd.stop()
            if volumes:
                shutil.rmtree(etcd.root, ignore_errors=True)
        if volumes and self.home.relocated:
            shutil.rmtree(self.home.path, ignore_errors=True)
            return
        nodes_dir = self.home.nodes
        if volumes and nodes_dir.exists() and not any(nodes_dir.iterdir()):
            nodes_dir.rmdir()

    # -- information ------------------------------------------------------------------------------
    def readiness(self, node: Node, timeout: float = 90.0) -> Readiness:
        recipe = self._recipe(node)
        group = self._groups.get(node.name)
        return node_readiness(self, self.ctx, node, timeout, "on ", tls=self.ctx.tls_on,
                              alive=lambda: recipe.running_pid() is not None,
                              also=group_ready(self.ctx, group.members) if group else None)

    def logs(self, node: Node, tail: int = 50) -> list[str]:
        log = self._recipe(node).log_file
        if not log.exists():
            return []
        with log.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 256 * 1024))  # the last 256 KiB
            lines = fh.read().decode(errors="replace").splitlines()
        return lines[-tail:] if tail else lines

    def endpoint(self, node: Node) -> Endpoint:
        tls_dir = str(self._dir(node) / "tls") if self.ctx.tls_on else None
        return Endpoint(node.name, node.role.value, node.engine.value, self.name, node.host, node.port,
                        node.host, node.port, node.database, tls_dir)

    def write_pg_file(self, node: Node, name: str, content: str) -> None:
        write_file(self._recipe(node).data_dir / name, content, 0o600, chown=self.run_as.chown)

    def source_address(self, node: Node) -> str:
        return "127.0.0.1" if node.host in ("127.0.0.1", "localhost") else node.host

    def psql_argv(self, node: Node, user: str, password: str, database: str,
                  args: list[str]) -> tuple[list[str], dict[str, str]]:
        psql = self.pg_bindir / "psql"
        exe = str(psql) if psql.exists() else (shutil.which("psql") or "psql")
        env = {"PGPASSWORD": password}
        if self.ctx.tls_on:
            env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=self.ctx.ca_path())
        host, port = node.host, str(node.port)
        if node.name in self._groups:  # under HA: the group's leader, whichever member it is
            leader = pg_engine.leader_params(member_addresses(self.topology, node.name))
            host, port, env["PGTARGETSESSIONATTRS"] = leader["host"], leader["port"], leader["target_session_attrs"]
        return [exe, "-h", host, "-p", port, "-U", user, "-d", database, *args], env

    def kill(self, node: Node) -> None:
        """SIGKILL the node's main process (tests use it to simulate a crash)."""
        recipe = self._recipe(node)
        pid = recipe.running_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while recipe.running_pid() and time.monotonic() < deadline:
                time.sleep(0.02)

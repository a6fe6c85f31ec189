"""High availability as local processes: a Citus group is its members' Patroni processes (each running its own
PostgreSQL, as the unprivileged server user when streamctl is root) and the etcd members keep their leader
keys. A group's first member lives in the node's own directory, its standbys in nodes/NAME-2, ...; etcd in
etcd/etcd-N beside them. What they run is `streamctl/ha/`'s; this module only starts, finds and stops them."""

from __future__ import annotations

import os
import shlex
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamctl.atomic import write_file
from streamctl.backends.base import made_as
from streamctl.backends.local import pg_template
from streamctl.backends.local.pg_template import Statements
from streamctl.backends.local.privileges import RunAs
from streamctl.backends.local.recipes import Recipe, Runner, pid_alive, read_pid
from streamctl.config.members import EtcdMember, Group, Member, etcd_members
from streamctl.config.model import Node, Topology
from streamctl.engines import postgres as pg_engine
from streamctl.engines.tls import CA
from streamctl.ha import dcs, patroni, rest, rolling, runtime
from streamctl.ha import etcd as etcd_conf
from streamctl.ha.roles import citus_bootstrap_settings, citus_bootstrap_statements, patroni_roles_statements
from streamctl.ha.secrets import KEYS, ha_secrets
from streamctl.readiness import Readiness
from streamctl.state import StateStore

if TYPE_CHECKING:
    from streamctl.context import ClusterContext

BEFORE_HA = "streamctl.conf.before-ha"  # a plain server's settings, set aside when Patroni takes its data
_ETCD_LOCK = threading.Lock()  # the groups of one `up` start in parallel: etcd is started once


def detached(argv: list[str], log: Path, pid_file: Path) -> list[str]:
    """A shell that starts `argv` in the background (its output appended to `log`, its pid in `pid_file`) and
    returns at once; the backend runs it in a session of its own, so the process outlives it."""
    return ["/bin/sh", "-c", f"exec </dev/null >>{shlex.quote(str(log))} 2>&1; {shlex.join(argv)} & "
                             f"echo $! > {shlex.quote(str(pid_file))}"]


def alive(pid_file: Path, expect: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid and pid_alive(pid, expect) else None


def _make_dirs(run_as: RunAs, *dirs: Path) -> None:
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_as.chown(d)


def etcd_root(home: Path) -> Path:
    """Where the cluster's etcd members keep their data and pid files (`home`: the cluster's local home)."""
    return home / "etcd"


class Etcd:
    """The cluster's etcd members, under etcd_root."""

    def __init__(self, topology: Topology, home: Path) -> None:
        self.topology, self.members, self.root = topology, etcd_members(topology), etcd_root(home)

    def _pid_file(self, m: EtcdMember) -> Path:
        return self.root / m.name / "etcd.pid"

    def pids(self) -> list[int]:
        return [p for m in self.members if (p := alive(self._pid_file(m), "etcd"))]

    def running(self) -> bool:
        return len(self.pids()) == len(self.members)

    def down(self) -> str:
        """Which etcd members do not run, in a few words."""
        gone = [m.name for m in self.members if not alive(self._pid_file(m), "etcd")]
        if len(gone) == len(self.members):
            return "etcd is down"
        return f"etcd member{'s' if len(gone) > 1 else ''} {', '.join(gone)} down ({len(self.members) - len(gone)} " \
               f"of {len(self.members)} run)"

    def start(self, run: Runner, run_as: RunAs) -> None:
        with _ETCD_LOCK:
            for m in self.members:
                if alive(self._pid_file(m), "etcd"):
                    continue
                _make_dirs(run_as, self.root, self.root / m.name, self.root / m.name / "data")
                argv = etcd_conf.argv("etcd", m, self.members, self.root / m.name / "data", self.topology.cluster)
                run(detached(argv, self.root / m.name / "etcd.log", self._pid_file(m)))
            self._wait_healthy()

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        first = self.members[0]
        log = self.root / first.name / "etcd.log"
        Readiness(f"etcd ({first.name})", lambda: etcd_conf.healthy(first), timeout, interval=0.2,
                  logs=lambda: tail(log, 20), hint=f"see {log}").wait()

    def stop(self) -> None:
        stop_all(self.pids, signal.SIGTERM, "etcd")

    def forget(self, group: Group | None) -> None:
        """A group that leaves takes its record in the DCS along (when etcd runs: else it goes with etcd)."""
        if group is not None and group.number is not None and self.running():  # a Citus group
            dcs.forget_group(self.members, self.topology.cluster, group.number)


def tail(path: Path, lines: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


def stop_all(pids: Callable[[], list[int]], sig: signal.Signals, what: str, timeout: float = 60.0) -> None:
    """Signal every process `pids()` lists and wait until none is left."""
    signalled = pids()
    for pid in signalled:
        os.kill(pid, sig)
    Readiness(f"{what} (pid {', '.join(map(str, signalled))}) stopping", lambda: not pids(), timeout,
              interval=0.05, hint="`streamctl logs` may tell why it does not stop").wait()


class GroupRecipe(Recipe):
    """A Citus group under HA: each member a Patroni process, started, found and stopped together."""

    expect = "patroni"

    def __init__(self, node: Node, node_dir: Path, topology: Topology, secrets: dict[str, str],
                 bindir: Path | None, tls_fingerprint: str | None, group: Group, home: Path,
                 state_root: Path) -> None:
        super().__init__(node, node_dir, topology, secrets, bindir, tls_fingerprint)
        self.group, self.home, self.state_root = group, home, state_root
        self.etcd = Etcd(topology, home)

    def paths(self, member: Member) -> patroni.MemberPaths:
        first = member.name == self.group.members[0].name
        return patroni.MemberPaths(self.dir if first else self.home / "nodes" / member.name)

    @property
    def data_dir(self) -> Path:
        return self.paths(self.group.members[0]).data_dir

    @property
    def log_file(self) -> Path:
        return self.paths(self.group.members[0]).log_file

    @property
    def pid_file(self) -> Path:
        return self.paths(self.group.members[0]).pid_file

    def dirs(self) -> list[Path]:
        return [self.paths(m).dir for m in self.group.members]

    def configs(self, password: str | None = None, masked: bool = False, settings: bool = True) -> dict[str, str]:
        """Every member's patroni.yml (`password`, `masked`: stand-ins for the superuser's and Patroni's own;
        `settings=False`: for the bootstrap's PostgreSQL parameters, which `up` keeps in the group's dynamic
        configuration instead)."""
        assert self.bindir is not None
        secrets = {k: f"<{k}>" for k in KEYS} if masked else ha_secrets(self.state_root)
        generation = StateStore(self.state_root).read().get("backup_generation")  # after `up --from-backup`
        return {m.name: patroni.render(patroni.member_config(
            self.topology, self.group, m, self.paths(m), self.bindir, self.tls_dir,
            password or self.secrets["postgres_password"], secrets, self.etcd.members, home=self.home,
            generation=generation, settings=settings)) for m in self.group.members}

    @property
    def definition(self) -> dict[str, Any]:
        """Without a password (the superuser's, Patroni's own): a rotated one is written and reloaded, no restart."""
        return self._definition()

    def _definition(self, legacy: int = 0) -> dict[str, Any]:
        """`legacy` (base.LEGACY_FORMS): 1 with the bootstrap's parameters, 2 with Patroni's passwords too."""
        return {"engine": "patroni", "bindir": str(self.bindir), "tls": self.tls_fingerprint,
                "config": self.configs("<postgres_password>", masked=legacy < 2, settings=legacy >= 1)}

    def made_as(self, recorded: str | None) -> str | None:
        return made_as(recorded, self._definition)

    def config_text(self) -> str:
        return "".join(self.configs().values())

    def initialized(self) -> bool:
        return any((self.paths(m).data_dir / "PG_VERSION").exists() for m in self.group.members)

    def initialize(self, run: Runner, run_as: RunAs) -> None:
        """The members' directories, and the first member's data: a copy of the machine-wide template (no
        initdb: pg_template) made this cluster's while no server runs (the superuser's password, the node's
        database, the roles Patroni logs in as and, in a Citus group, what Patroni's own bootstrap adds:
        ha/roles.py). Patroni then finds data and no group in the DCS and leads with it (`start` starts that
        member first); the standbys are cloned from it."""
        assert self.bindir is not None
        runtime.patroni_bin(create=True)
        for m in self.group.members:
            p = self.paths(m)
            _make_dirs(run_as, p.dir, p.data_dir, p.log_file.parent, p.socket_dir)
        secrets, password = ha_secrets(self.state_root, create=True), self.secrets["postgres_password"]
        roles = Statements(tuple(patroni_roles_statements(secrets)),
                           (secrets["replication_password"], secrets["rewind_password"]))
        citus = Statements(tuple(citus_bootstrap_statements(self.topology.pg_user, pg_engine.authinfo(password))),
                           (password,), citus_bootstrap_settings(self.tls_dir is not None)) if self.group.citus \
            else Statements()
        # Patroni's file before the data: data without it would be taken for a plain node's (`standalone`)
        pg_template.copy_into(self.data_dir, self.bindir, self.topology.pg_user, password, self.node.database, run,
                              run_as, roles, citus, before_place=lambda _: self.write_config(run_as))

    def write_config(self, run_as: RunAs) -> None:
        ha_secrets(self.state_root, create=True)
        for name, text in self.configs().items():
            member = next(m for m in self.group.members if m.name == name)
            write_file(self.paths(member).config_file, text, 0o600, chown=run_as.chown)
        plain = self.data_dir / "streamctl.conf"  # data made without ha: its settings are Patroni's now
        if plain.exists():
            plain.replace(self.data_dir / BEFORE_HA)

    def standalone(self) -> bool:
        """The node holds data made without ha, not (yet) run by Patroni (`up` converts it)."""
        return (self.data_dir / "PG_VERSION").exists() and not self.paths(self.group.members[0]).config_file.exists()

    def pids(self) -> list[int]:
        """Every member's Patroni; before the conversion, the plain server still running on the node's data."""
        if self.standalone():
            return [p for p in [alive(self.data_dir / "postmaster.pid", "postgres")] if p]
        return [p for m in self.group.members if (p := alive(self.paths(m).pid_file, self.expect))]

    def running_pid(self) -> int | None:
        """The first member's Patroni, when every member's and etcd run (else `up` has something to start)."""
        if self.standalone() or len(self.pids()) < len(self.group.members) or not self.etcd.running():
            return None
        return alive(self.pid_file, self.expect)

    def clear_stale(self) -> None:
        """Nothing here: `start` looks at each member's own pid file (the first member's is not stale merely
        because another member is down)."""

    def detail(self) -> str:
        if self.standalone():
            return "holds data made without ha: `up` makes it its group's leader under Patroni"
        running = len(self.pids())
        if running == len(self.group.members) and self.etcd.running():
            return super().detail()
        etcd = "" if self.etcd.running() else f"; {self.etcd.down()}"
        return f"{running} of {len(self.group.members)} members' Patroni running{etcd} (`up` starts the others)"

    def start(self, run: Runner, run_as: RunAs) -> None:
        """The members that hold data first; when some hold none, they start once the group is led, so that
        they clone from its data and never bootstrap a fresh group beside it."""
        self.etcd.start(run, run_as)
        holding = [m for m in self.group.members if (self.paths(m).data_dir / "PG_VERSION").exists()]
        empty = [m for m in self.group.members if m not in holding]
        self._launch(holding, run, run_as)
        if holding and empty:
            ca = str(self.tls_dir / CA) if self.tls_dir else None
            Readiness(f"{self.node.name} led by a member that holds its data",
                      lambda: any(s.ha_role == "leader" and s.state == "running"
                                  for s in rest.group_members(self.group.members, ca)),
                      120.0, interval=0.5, logs=lambda: tail(self.log_file, 20),
                      hint=f"see `streamctl logs {self.node.name}`").wait()
        self._launch(empty, run, run_as)

    def settled(self) -> bool:
        """Led, every member streaming: `up` then restarts its members one at a time (`roll`)."""
        return rolling.leader_of_settled(self.group, str(self.tls_dir / CA) if self.tls_dir else None) is not None

    def roll(self, ctx: ClusterContext, run: Runner, run_as: RunAs) -> bool:
        """Each member's Patroni restarted on its new configuration, one at a time, the leader last after a
        switchover (ha/rolling.py); False, nothing done, when the group is not settled."""

        def replace(m: Member) -> None:
            p = self.paths(m)
            stop_all(lambda: [pid for pid in [alive(p.pid_file, self.expect)] if pid], signal.SIGTERM, m.name)
            self._launch([m], run, run_as)

        return rolling.roll_group(ctx, self.group, list(self.group.members), replace)

    def _launch(self, members: list[Member], run: Runner, run_as: RunAs) -> None:
        program = str(runtime.patroni_bin(create=False))
        for m in members:
            p = self.paths(m)
            if not alive(p.pid_file, self.expect):
                _make_dirs(run_as, p.dir, p.data_dir, p.log_file.parent, p.socket_dir)
                run(detached([program, str(p.config_file)], p.log_file, p.pid_file))

    def release(self) -> None:
        """Every member's Patroni killed, its PostgreSQL left running: nothing manages the group any more, and
        no demotion is announced (a leader's Patroni stopping asks the coordinator's Patroni to hold
        pg_dist_node in a transaction until a standby is promoted, which for a group leaving never comes)."""
        stop_all(self.pids, signal.SIGKILL, self.node.name)

    def stop_for_good(self, run: Callable[[list[str], str], None]) -> None:
        """A group leaving with its data: released, then each member's PostgreSQL stopped at once (`immediate`):
        a clean stop of data about to be removed would only wait, for its shutdown checkpoint, for the
        archiver to push its last segments through archive-push (retried when that fails) and for the
        walsenders to see the standbys acknowledge the end of the WAL."""
        assert self.bindir is not None
        self.release()
        for member in self.group.members:
            data = self.paths(member).data_dir
            if (data / "postmaster.pid").exists():
                run([str(self.bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "60"],
                    f"stop {member.name}")

"""High availability as local processes: a Citus group is its members' Patroni processes (each running its own
PostgreSQL, as the unprivileged server user when streamctl is root) and the etcd members keep their leader
keys. A group's first member lives in the node's own directory, its standbys in nodes/NAME-2, ...; etcd in
etcd/etcd-N beside them. What they run is `streamctl/ha/`'s; this module only starts, finds and stops them."""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from streamctl.atomic import write_file
from streamctl.backends.local.privileges import RunAs
from streamctl.backends.local.recipes import Recipe, Runner, pid_alive, read_pid
from streamctl.config.members import EtcdMember, Group, Member, etcd_members
from streamctl.config.model import Node, Topology
from streamctl.errors import BackendError, RefusedError
from streamctl.ha import etcd as etcd_conf
from streamctl.ha import patroni, runtime
from streamctl.ha.secrets import ha_secrets

_ETCD_LOCK = threading.Lock()  # the groups of one `up` start in parallel: etcd is started once


def detached(argv: list[str], log: Path, pid_file: Path) -> list[str]:
    """A shell that starts `argv` in the background (its output appended to `log`, its pid in `pid_file`) and
    returns at once; the backend runs it in a session of its own, so the process outlives it."""
    return ["/bin/sh", "-c", f"exec </dev/null >>{shlex.quote(str(log))} 2>&1; {shlex.join(argv)} & "
                             f"echo $! > {shlex.quote(str(pid_file))}"]


def _alive(pid_file: Path, expect: str) -> int | None:
    pid = read_pid(pid_file)
    return pid if pid and pid_alive(pid, expect) else None


def _make_dirs(run_as: RunAs, *dirs: Path) -> None:
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_as.chown(d)


class Etcd:
    """The cluster's etcd members, under <home>/etcd/."""

    def __init__(self, topology: Topology, home: Path) -> None:
        self.topology, self.members, self.root = topology, etcd_members(topology), home / "etcd"

    def _pid_file(self, m: EtcdMember) -> Path:
        return self.root / m.name / "etcd.pid"

    def pids(self) -> list[int]:
        return [p for m in self.members if (p := _alive(self._pid_file(m), "etcd"))]

    def running(self) -> bool:
        return len(self.pids()) == len(self.members)

    def start(self, run: Runner, run_as: RunAs) -> None:
        with _ETCD_LOCK:
            for m in self.members:
                if _alive(self._pid_file(m), "etcd"):
                    continue
                _make_dirs(run_as, self.root, self.root / m.name, self.root / m.name / "data")
                argv = etcd_conf.argv("etcd", m, self.members, self.root / m.name / "data", self.topology.cluster)
                run(detached(argv, self.root / m.name / "etcd.log", self._pid_file(m)))
            self._wait_healthy()

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.members[0].host}:{self.members[0].port}/health",  # noqa: S310
                                            timeout=2) as response:
                    if b'"true"' in response.read():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"etcd did not become healthy within {timeout:.0f}s",
                                   hint=f"see {self.root}/{self.members[0].name}/etcd.log")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_all(self.pids, signal.SIGTERM, "etcd")


def stop_all(pids: Any, sig: signal.Signals, what: str, timeout: float = 60.0) -> None:
    """Signal every process `pids()` lists and wait until none is left."""
    for pid in pids():
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    if pids():
        raise BackendError(f"{what} (pid {', '.join(map(str, pids()))}) did not stop within {timeout:.0f}s")


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

    def configs(self) -> dict[str, str]:
        assert self.bindir is not None
        secrets = ha_secrets(self.state_root)
        return {m.name: patroni.render(patroni.member_config(
            self.topology, self.group, m, self.paths(m), self.bindir, self.tls_dir,
            self.secrets["postgres_password"], secrets, self.etcd.members, self.home)) for m in self.group.members}

    @property
    def definition(self) -> dict[str, Any]:
        return {"engine": "patroni", "bindir": str(self.bindir), "config": self.configs(), "tls": self.tls_fingerprint}

    def config_text(self) -> str:
        return "".join(self.configs().values())

    def initialized(self) -> bool:
        return any((self.paths(m).data_dir / "PG_VERSION").exists() for m in self.group.members)

    def initialize(self, run: Runner, run_as: RunAs) -> None:
        """Directories only: the leader's PostgreSQL is made by Patroni (initdb), its standbys cloned from it."""
        runtime.patroni_bin(create=True)
        for m in self.group.members:
            p = self.paths(m)
            _make_dirs(run_as, p.dir, p.data_dir, p.log_file.parent, p.socket_dir)

    def write_config(self, run_as: RunAs) -> None:
        ha_secrets(self.state_root, create=True)
        for name, text in self.configs().items():
            member = next(m for m in self.group.members if m.name == name)
            write_file(self.paths(member).config_file, text, 0o600, chown=run_as.chown)

    def pids(self) -> list[int]:
        return [p for m in self.group.members if (p := _alive(self.paths(m).pid_file, self.expect))]

    def running_pid(self) -> int | None:
        """The first member's Patroni, when every member's and etcd run (else `up` has something to start)."""
        if len(self.pids()) < len(self.group.members) or not self.etcd.running():
            return None
        return _alive(self.pid_file, self.expect)

    def clear_stale(self) -> None:
        """Nothing here: `start` looks at each member's own pid file (the first member's is not stale merely
        because another member is down)."""

    def detail(self) -> str:
        running = len(self.pids())
        if running == len(self.group.members) and self.etcd.running():
            return super().detail()
        etcd = "" if self.etcd.running() else "; etcd is down"
        return f"{running} of {len(self.group.members)} members' Patroni running{etcd} (`up` starts the others)"

    def start(self, run: Runner, run_as: RunAs) -> None:
        self.etcd.start(run, run_as)
        program = str(runtime.patroni_bin(create=False))
        for m in self.group.members:
            p = self.paths(m)
            if not _alive(p.pid_file, self.expect):
                _make_dirs(run_as, p.dir, p.data_dir, p.log_file.parent, p.socket_dir)
                run(detached([program, str(p.config_file)], p.log_file, p.pid_file))


def mode_change(node: Node, node_dir: Path, under_ha: bool) -> RefusedError | None:
    """Turning HA on for a node that holds data, or off for a group Patroni runs, is not built yet: refused
    before anything changes, rather than a fresh empty leader beside the data (or Patroni's data run bare)."""
    patroni_made = (node_dir / "patroni.yml").exists()
    if under_ha and not patroni_made and (node_dir / "data" / "PG_VERSION").exists():
        return RefusedError(f"{node.name} holds data made without ha, and turning ha on for existing data is not "
                            "built yet", hint="remove the ha section, or start from `streamctl down --volumes`")
    if not under_ha and patroni_made:
        return RefusedError(f"{node.name} is run by Patroni (the topology had an ha section), and turning ha off "
                            "is not built yet", hint="put the ha section back")
    return None

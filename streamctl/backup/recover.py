"""One restored PostgreSQL node, in isolation: its files from the repository, a first start that accepts
no TCP connection, loads no Citus and archives nothing, replay to the restore point judged from the
server's own log (PostgreSQL accepts read-only connections before failing on a missing segment, so a
successful start proves nothing), then the node made the target cluster's own."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from streamctl.backup.pgbackrest import BackupError, PgBackRest
from streamctl.config.model import Node
from streamctl.names import FDW_USER, GATEWAY_USER, REPLICATION_USER

if TYPE_CHECKING:
    from streamctl.backends.local.backend import LocalBackend

HBA = "restore_hba.conf"
RECOVERY_SETTINGS = ("restore_command", "recovery_target_name", "recovery_target_action", "recovery_target_time",
                     "recovery_target_timeline", "archive_mode", "archive_command")
_PORT = re.compile(r"^\s*port\s*=\s*'?(\d+)'?", re.M)


@dataclass
class RestoredNode:
    node: Node
    backend: LocalBackend
    source_port: int = 0  # the port the node had in the cluster it was backed up from

    @property
    def data(self) -> Path:
        return self.backend.data_dir(self.node)

    @property
    def socket(self) -> Path:
        sock = self.backend.socket_dir(self.node)
        if sock is None:
            raise BackupError(f"{self.node.name}: its socket directory path is too long for a Unix socket, "
                              "which a restore needs", hint="use a shorter state directory")
        return sock

    @property
    def log(self) -> Path:
        return self.data.parent / "log" / "postgres.log"

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """Over the node's Unix socket (trusted while isolated; only its user and root reach it)."""
        return psycopg.connect(host=str(self.socket), port=self.node.port, dbname=dbname or self.node.database,
                               user=self.backend.topology.pg_user, autocommit=True, connect_timeout=5)

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.backend.pg_bindir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                              start_new_session=True, **self.backend.run_as.subprocess_kwargs())

    def log_lines(self, n: int = 15) -> list[str]:
        return self.backend.logs(self.node, n)


def fetch(tool: PgBackRest, rn: RestoredNode, stanza: str, backup_label: str, point: str) -> None:
    """The node's files from its backup set, with recovery to `point` configured and archiving off."""
    run_as = rn.backend.run_as
    node_dir = rn.data.parent
    for sub in (node_dir, node_dir / "log", node_dir / "run"):
        sub.mkdir(mode=0o700, parents=True, exist_ok=True)
        run_as.chown(sub)
    if rn.data.exists() and any(rn.data.iterdir()):
        raise BackupError(f"{rn.node.name}: {rn.data} is not empty; a restore never writes over data")
    tool.run(stanza, "restore", f"--pg1-path={rn.data}", f"--set={backup_label}", "--type=name",
             f"--target={point}", "--target-action=promote", "--archive-mode=off",
             what=f"{rn.node.name}: restore from {stanza}")
    conf = rn.data / "streamctl.conf"
    found = _PORT.search(conf.read_text()) if conf.exists() else None
    rn.source_port = int(found.group(1)) if found else 0


def start_isolated(rn: RestoredNode) -> None:
    """Settings for the first start: no TCP, no Citus, no archiving, trust on the socket only."""
    run_as = rn.backend.run_as
    hba = rn.socket / HBA
    hba.write_text("local all all trust\n")
    run_as.chown(hba)
    conf = rn.data / "streamctl.conf"
    conf.write_text(rn.backend.config_text(rn.node) + "\n# restore in progress (isolated)\n"
                    "listen_addresses = ''\nshared_preload_libraries = ''\narchive_mode = off\n"
                    # no hot standby: a server without Citus loaded has fewer prepared-transaction slots
                    # than the WAL recorded, which hot standby refuses; connections wait for the promotion
                    "hot_standby = off\n"
                    # pgBackRest synced every file it wrote: no second fsync of each at start (the one
                    # after an unclean stop); what the isolated server writes is synced by `stop`
                    "fsync = off\n"
                    f"hba_file = '{hba}'\nssl = off\n")
    run_as.chown(conf)
    rn.log.unlink(missing_ok=True)
    proc = rn.pg_ctl("-l", str(rn.log), "-W", "start")
    if proc.returncode != 0:
        raise BackupError(f"{rn.node.name}: the restored server did not start",
                          details=[*(proc.stderr or proc.stdout).strip().splitlines()[-5:], *rn.log_lines()])


def _next_segment(log: str) -> str | None:
    """The WAL segment recovery asked for and did not get: the one after the last it restored (16 MB
    segments: 256 per log file), when the server says recovery ended before its target."""
    if "before configured recovery target was reached" not in log:
        return None
    restored = re.findall(r'restored log file "([0-9A-F]{24})" from archive', log)
    if not restored:
        return None
    tli, log_no, seg = int(restored[-1][:8], 16), int(restored[-1][8:16], 16), int(restored[-1][16:], 16) + 1
    if seg > 0xFF:
        log_no, seg = log_no + 1, 0
    return f"{tli:08X}{log_no:08X}{seg:08X}"


def wait_for_target(rn: RestoredNode, point: str, timeout: float = 600.0) -> None:
    """Until the server promoted after stopping at `point`; a FATAL, an exit or a timeout is a failure."""
    deadline = time.monotonic() + timeout
    reached = f'recovery stopping at restore point "{point}"'
    while True:
        text = rn.log.read_text(errors="replace") if rn.log.exists() else ""
        gone = not (rn.data / "postmaster.pid").exists()
        if "before configured recovery target was reached" in text or (gone and "FATAL:" in text):
            missing = _next_segment(text)
            what = f" (WAL segment {missing} is missing from the repository)" if missing else ""
            rn.pg_ctl("-m", "immediate", "stop")
            raise BackupError(f"{rn.node.name}: recovery did not reach the restore point {point!r}{what}",
                              details=[x for x in text.splitlines() if "FATAL" in x or "ERROR" in x][-6:],
                              hint="the repository lacks WAL between the backup and the point; restore "
                                   "another set (`streamctl backup list`)" if missing else
                              f"the restored server's log: {rn.log}")
        if reached in text and "database system is ready to accept connections" in text.split(reached, 1)[1]:
            try:
                with rn.connect() as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                        return
            except psycopg.OperationalError:
                pass
        if time.monotonic() > deadline:
            raise BackupError(f"{rn.node.name}: recovery to {point!r} did not finish within {timeout:.0f}s",
                              details=rn.log_lines())
        time.sleep(0.1)


def make_own(rn: RestoredNode, secrets: dict[str, str]) -> None:
    """The target cluster's passwords on the roles streamctl manages (the copy came with the source's),
    recovery and archiving settings cleared (its own stanza gets its archive_command from `up`)."""
    roles = {rn.backend.topology.pg_user: "postgres_password", REPLICATION_USER: "replication_password",
             FDW_USER: "fdw_password", GATEWAY_USER: "gateway_password"}
    with rn.connect() as conn:
        present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                              (list(roles),)).fetchall()}
        for role, key in roles.items():
            if role in present and secrets.get(key):
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                          sql.Literal(secrets[key])))
        for name in RECOVERY_SETTINGS:
            conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))


def stop(rn: RestoredNode) -> None:
    """Stop, and write the node's managed settings as `up` would (it starts it, Citus loaded); then sync
    what the isolated server wrote without fsync (its files are durable before `up` starts it)."""
    proc = rn.pg_ctl("-m", "fast", "-w", "stop")
    if proc.returncode != 0 and (rn.data / "postmaster.pid").exists():
        raise BackupError(f"{rn.node.name}: the restored server did not stop", details=rn.log_lines())
    conf = rn.data / "streamctl.conf"
    conf.write_text(rn.backend.config_text(rn.node))
    rn.backend.run_as.chown(conf)
    (rn.socket / HBA).unlink(missing_ok=True)
    os.sync()

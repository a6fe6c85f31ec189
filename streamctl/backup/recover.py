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
from typing import Any, Protocol

import psycopg
from psycopg import sql

from streamctl.backup.pgbackrest import BackupError, PgBackRest
from streamctl.config.model import Node
from streamctl.names import FDW_USER, GATEWAY_USER, REPLICATION_USER

HBA = "restore_hba.conf"
RECOVERY_SETTINGS = ("restore_command", "recovery_target_name", "recovery_target_action", "recovery_target_time",
                     "recovery_target_timeline", "archive_mode", "archive_command")


class Site(Protocol):
    """Where one restored node's server runs while isolated (backup/local.py: a data directory here;
    backup/docker.py: a container with no network; backup/swarm_site.py: a task on the node's host, on a
    network of the restore's own). Paths the server sees are strings; `socket` and `log` are where this
    process finds them (a site whose log is not a file here has `log_text()` too)."""

    node: Node
    data: Any  # PGDATA as pgBackRest and the server see it
    socket: Path
    server_socket: str
    port: int
    log: Path

    def prepare(self) -> None: ...
    def put_file(self, name: str, text: str) -> None: ...
    def remove_file(self, name: str) -> None: ...
    def source_port(self) -> int: ...
    def plain_conf(self) -> None: ...
    def start(self, settings: list[tuple[str, str]]) -> subprocess.CompletedProcess[str]: ...
    def finalize(self) -> None: ...
    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]: ...
    def running(self) -> bool: ...
    def log_lines(self, n: int = 15) -> list[str]: ...
    def discard_data(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class RestoredNode:
    node: Node
    site: Site
    user: str  # the cluster's PostgreSQL superuser
    source_port: int = 0  # the port the node had in the cluster it was backed up from (0: unchanged)

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """Over the node's Unix socket (trusted while isolated; only its user and root reach it)."""
        return psycopg.connect(host=str(self.site.socket), port=self.site.port, dbname=dbname or self.node.database,
                               user=self.user, autocommit=True, connect_timeout=5)

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.site.pg_ctl(*args)

    def log_text(self) -> str:
        reader = getattr(self.site, "log_text", None)
        if reader is not None:
            return str(reader())
        log = self.site.log
        return log.read_text(errors="replace") if log.exists() else ""


def fetch(tool: PgBackRest, rn: RestoredNode, stanza: str, backup_label: str, point: str) -> None:
    """The node's files from its backup set, with recovery to `point` configured and archiving off (the
    site is prepared: its data directory empty)."""
    tool.run(stanza, "restore", f"--pg1-path={rn.site.data}", f"--set={backup_label}", "--type=name",
             f"--target={point}", "--target-action=promote", "--archive-mode=off",
             what=f"{rn.node.name}: restore from {stanza}", node=rn.node)
    rn.source_port = rn.site.source_port()


def prepared_slots(node: Node) -> str:
    """The prepared-transaction slots the node ran with: Citus (and Patroni for a Citus member) give
    max_prepared_transactions 2 x max_connections unless set. Replay needs as many as the WAL holds
    PREPAREs for (Citus's two-phase commits between the backup and the point), and without Citus loaded the
    server would have none."""
    given = dict(node.settings)
    if int(given.get("max_prepared_transactions", "0") or 0) > 0:
        return str(given["max_prepared_transactions"])
    return str(2 * int(given.get("max_connections", "100") or 100))


def start_isolated(rn: RestoredNode) -> None:
    """Settings for the first start: no TCP, no Citus, no archiving, trust on the socket only."""
    rn.site.put_file(HBA, "local all all trust\n")
    # no hot standby (it compares more settings with the source's): connections wait for the promotion; the
    # prepared-transaction slots Citus gave the node, for the PREPAREs its two-phase commits left in the WAL
    proc = rn.site.start([("listen_addresses", ""), ("shared_preload_libraries", ""), ("archive_mode", "off"),
                          ("hot_standby", "off"), ("max_prepared_transactions", prepared_slots(rn.node)),
                          # pgBackRest synced every file it wrote: no second fsync of each at start (the one
                          # after an unclean stop); what the isolated server writes is synced by `stop`
                          ("fsync", "off"), ("hba_file", f"{rn.site.server_socket}/{HBA}"), ("ssl", "off"),
                          # a copy of a synchronous leader's data names its standbys: none exists here, and a
                          # commit (a replica's reconciliation, the catalog's rewrite) would wait for ever
                          ("synchronous_standby_names", "")])
    if proc.returncode != 0:
        raise BackupError(f"{rn.node.name}: the restored server did not start",
                          details=[*(proc.stderr or proc.stdout).strip().splitlines()[-5:], *rn.site.log_lines()])


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
        text = rn.log_text()
        if "before configured recovery target was reached" in text or ("FATAL:" in text and not rn.site.running()):
            missing = _next_segment(text)
            what = f" (WAL segment {missing} is missing from the repository)" if missing else ""
            rn.pg_ctl("-m", "immediate", "stop")
            raise BackupError(f"{rn.node.name}: recovery did not reach the restore point {point!r}{what}",
                              details=[x for x in text.splitlines() if "FATAL" in x or "ERROR" in x][-6:],
                              hint="the repository lacks WAL between the backup and the point; restore "
                                   "another set (`streamctl backup list`)" if missing else
                              f"the restored server's log: {rn.site.log}")
        if reached in text and "database system is ready to accept connections" in text.split(reached, 1)[1]:
            try:
                with rn.connect() as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                        return
            except psycopg.OperationalError:
                pass
        if time.monotonic() > deadline:
            raise BackupError(f"{rn.node.name}: recovery to {point!r} did not finish within {timeout:.0f}s",
                              details=rn.site.log_lines())
        time.sleep(0.1)


def make_own(rn: RestoredNode, secrets: dict[str, str]) -> None:
    """The target cluster's passwords on the roles streamctl manages (the copy came with the source's),
    recovery and archiving settings cleared (its own stanza gets its archive_command from `up`)."""
    roles = {rn.user: "postgres_password", REPLICATION_USER: "replication_password",
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
    if proc.returncode != 0 and rn.site.running():
        raise BackupError(f"{rn.node.name}: the restored server did not stop", details=rn.site.log_lines())
    rn.site.finalize()
    rn.site.remove_file(HBA)
    os.sync()  # the host's kernel holds the local data directory and the local engine's volumes alike

"""PostgreSQL servers made by hand (initdb/pg_ctl), as an operator would: the "external" nodes of the
external-backend tests. As root, the servers run as an unprivileged user, like the local backend's."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from streamctl.backends.local.privileges import RunAs, resolve_run_as
from streamctl.backends.local.recipes import find_pg_bindir
from tests.support.cluster import traversable_tmpdir
from tests.support.ports import free_port

USER = "opsadmin"  # the operator's superuser on these servers (not streamctl's default name)


@dataclass
class HandServer:
    """One PostgreSQL server started with pg_ctl, password (scram) logins only over TCP on 127.0.0.1."""

    datadir: Path
    port: int
    bindir: Path
    run_as: RunAs
    password: str
    citus: bool = False
    started: bool = field(default=False)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=120, **self.run_as.subprocess_kwargs())
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr or proc.stdout}")

    def init(self) -> None:
        self.datadir.mkdir(parents=True)
        self.run_as.chown(self.datadir)
        pwfile = self.datadir.parent / f"{self.datadir.name}.pw"
        pwfile.write_text(self.password + "\n")
        self.run_as.chown(pwfile)
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", USER, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C")
        pwfile.unlink()
        conf = [f"port = {self.port}", "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{self.datadir}'", "wal_level = logical", "max_connections = 100",
                "max_wal_senders = 10", "max_replication_slots = 10", "fsync = off"]
        if self.citus:
            conf += ["shared_preload_libraries = 'citus'", "citus.enable_statistics_collection = off"]
        with (self.datadir / "postgresql.conf").open("a") as fh:
            fh.write("\n".join(conf) + "\n")
        (self.datadir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n")

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.datadir / "log"),
                  "-w", "-t", "60", "start")
        self.started = True

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
            self.started = False

    def conninfo(self, dbname: str = "postgres", user: str = USER, password: str | None = None) -> str:
        return (f"host=127.0.0.1 port={self.port} dbname={dbname} user={user} "
                f"password={password or self.password}")

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(dbname, **kwargs), autocommit=True)


class HandCluster:
    """A set of hand-made servers in one temporary directory; stop() stops all and removes the files."""

    def __init__(self, password: str, bindir: str | None = None) -> None:
        self.root = traversable_tmpdir()
        self.bindir = find_pg_bindir(bindir)
        self.run_as = resolve_run_as(None)
        self.password = password
        self.servers: list[HandServer] = []

    def server(self, citus: bool = False) -> HandServer:
        s = HandServer(self.root / f"pg{len(self.servers)}", free_port(), self.bindir, self.run_as,
                       self.password, citus)
        self.servers.append(s)
        s.init()
        s.start()
        return s

    def stop(self) -> None:
        for s in self.servers:
            with contextlib.suppress(Exception):  # best-effort cleanup
                s.stop()
        shutil.rmtree(self.root, ignore_errors=True)

"""A member's Patroni configuration, generated from the topology: Citus mode for its group (a plain cluster for
the analytics primary, `analytics.py`), the DCS timing and synchronous mode of `ha:`, the node's PostgreSQL
settings, TLS from the cluster CA, the REST API with a password, and the access rules Patroni writes on every
member alike (`postgresql.pg_hba`).

What a measured run taught (see the README's HA section): replicas need a fast checkpoint to clone without a
long stall; a private unix_socket_directories; pg_rewind needs wal_log_hints and a rewind user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streamctl.config.members import EtcdMember, Group, Member
from streamctl.config.model import Topology
from streamctl.engines import postgres as pg_engine
from streamctl.engines.tls import CA, CERT, KEY
from streamctl.ha import analytics
from streamctl.names import HA_NAMESPACE, HA_REPLICATION_USER, HA_REST_USER, HA_REWIND_USER

MAXIMUM_LAG_ON_FAILOVER = 1024 * 1024  # bytes: a standby further behind is not promoted


@dataclass(frozen=True)
class MemberPaths:
    """Where a member's files are, as its Patroni and PostgreSQL see them."""

    dir: Path

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    @property
    def config_file(self) -> Path:
        return self.dir / "patroni.yml"

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / "patroni.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "run" / "patroni.pid"


def retry_timeout(ttl: int, loop_wait: int) -> int:
    """As long as Patroni's rule allows (ttl >= loop_wait + 2 x retry_timeout), at most 10 seconds."""
    return max(1, min(10, (ttl - loop_wait) // 2))


def synchronous_mode(mode: str) -> bool | str:
    return {"off": False, "on": True}.get(mode, mode)


def hba_lines(members: tuple[Member, ...], tls: bool) -> list[str]:
    """Password logins only (over TLS when it is on), Patroni's own socket, and its standbys' replication
    connections from the group's members."""
    host = "hostssl" if tls else "host"
    replication = sorted({m.node.host for m in members})
    return ["local all all scram-sha-256",
            *(f"{host} replication {HA_REPLICATION_USER} {h}/32 scram-sha-256" for h in replication),
            f"{host} all all all scram-sha-256", "host replication all all reject"]


def member_config(t: Topology, group: Group, member: Member, paths: MemberPaths, bindir: Path,
                  tls_dir: Path | None, postgres_password: str, ha_secrets: dict[str, str],
                  etcd: list[EtcdMember]) -> dict[str, Any]:
    """Patroni's configuration of one member (a dict, written as YAML by `render`)."""
    ha = t.ha
    assert ha is not None
    node = member.node
    tls: dict[str, str] = {}
    socket = len(str(paths.socket_dir)) < 90  # Unix socket paths are limited to ~107 bytes: TCP for deep ones
    parameters: dict[str, str] = {"unix_socket_directories": str(paths.socket_dir) if socket else ""}
    if tls_dir is not None:
        parameters.update(pg_engine.tls_settings(str(tls_dir), citus=group.citus))
        tls = {"sslmode": "verify-full", "sslrootcert": str(tls_dir / CA)}
    rest = f"{node.host}:{member.rest_port}"
    restapi: dict[str, Any] = {"listen": rest, "connect_address": rest,
                               "authentication": {"username": HA_REST_USER, "password": ha_secrets["rest_password"]}}
    ctl: dict[str, Any] = {"insecure": False}
    if tls_dir is not None:
        restapi.update(certfile=str(tls_dir / CERT), keyfile=str(tls_dir / KEY), cafile=str(tls_dir / CA))
        ctl["cacert"] = str(tls_dir / CA)
    config: dict[str, Any] = {
        "scope": t.cluster if group.citus else analytics.scope(t),
        "namespace": HA_NAMESPACE,
        "name": member.name,
        "restapi": restapi,
        "ctl": ctl,
        "etcd3": {"hosts": [f"{e.host}:{e.port}" for e in etcd]},
        "citus": {"group": group.number, "database": t.metadata.database},
        "bootstrap": {
            "dcs": {
                "ttl": ha.ttl, "loop_wait": ha.loop_wait, "retry_timeout": retry_timeout(ha.ttl, ha.loop_wait),
                "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER,
                "synchronous_mode": synchronous_mode(ha.synchronous),
                "postgresql": {"use_pg_rewind": True, "use_slots": True,
                               "parameters": {**dict(node.settings), "wal_log_hints": "on", "hot_standby": "on"}},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth-local": "scram-sha-256"},
                       {"auth-host": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": f"{node.bind}:{member.port}",
            "connect_address": f"{node.host}:{member.port}",
            "data_dir": str(paths.data_dir),
            "bin_dir": str(bindir),
            "pgpass": str(paths.dir / "pgpass"),
            "use_unix_socket": socket,
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {
                "superuser": {"username": t.pg_user, "password": postgres_password},
                "replication": {"username": HA_REPLICATION_USER, "password": ha_secrets["replication_password"],
                                **tls},
                "rewind": {"username": HA_REWIND_USER, "password": ha_secrets["rewind_password"], **tls},
            },
            "parameters": parameters,
            "pg_hba": hba_lines(group.members, tls_dir is not None),
        },
    }
    if not group.citus:  # the analytics primary: a plain Patroni cluster keeping its replicas' slots
        del config["citus"]
        dcs = config["bootstrap"]["dcs"]
        extra = analytics.dcs_settings(t)
        dcs["ignore_slots"] = extra["ignore_slots"]
        dcs["postgresql"]["parameters"].update(extra["postgresql"]["parameters"])
    return config


def render(config: dict[str, Any]) -> str:
    return "# managed by streamctl: rewritten by every `up`\n" + yaml.safe_dump(config, sort_keys=False)

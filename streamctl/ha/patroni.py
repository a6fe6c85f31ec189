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
from streamctl.engines import pgbackrest
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


def dcs_core(t: Topology) -> dict[str, Any]:
    """The group-wide settings of `ha:` in Patroni's dynamic configuration: what each group bootstraps with and
    what `up` keeps there (services/ha.py; PostgreSQL's parameters aside)."""
    ha = t.ha
    assert ha is not None
    return {"ttl": ha.ttl, "loop_wait": ha.loop_wait, "retry_timeout": retry_timeout(ha.ttl, ha.loop_wait),
            "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER, "synchronous_mode": synchronous_mode(ha.synchronous),
            "postgresql": {"use_pg_rewind": True, "use_slots": True}}


PARAMETERS_KEPT = "<kept in the group's dynamic configuration by up>"  # `settings=False` of member_config


def dcs_parameters(t: Topology, group: Group) -> dict[str, str]:
    """The PostgreSQL parameters of the group's dynamic configuration: the node's settings, what Patroni's
    rewind and hot standbys need, and on the analytics primary's group the standbys' feedback its slots need.
    Every member runs with them (its own file's parameters aside); `up` keeps them (services/ha.py)."""
    parameters = {**dict(group.node.settings), "wal_log_hints": "on", "hot_standby": "on"}
    if not group.citus:
        parameters.update(analytics.dcs_settings(t)["postgresql"]["parameters"])
    return parameters


@dataclass(frozen=True)
class Site:
    """Where a member is reached, as its Patroni sees it. The local backend's (`local_site`): the topology's
    host and the member's own ports; a container's: its network name and the engine's ports."""

    listen: str  # PostgreSQL's host:port
    connect: str  # what the other members and pg_dist_node use
    rest_listen: str
    rest_connect: str
    etcd_hosts: tuple[str, ...]
    replication_from: tuple[str, ...]  # pg_hba addresses of the standbys' replication connections


def local_site(member: Member, etcd: list[EtcdMember]) -> Site:
    node = member.node
    rest = f"{node.host}:{member.rest_port}"
    return Site(f"{node.bind}:{member.port}", f"{node.host}:{member.port}", rest, rest,
                tuple(f"{e.host}:{e.port}" for e in etcd), (f"{node.host}/32",))


def hba_lines(members: tuple[Member, ...], tls: bool, sources: tuple[str, ...] | None = None) -> list[str]:
    """Password logins only (over TLS when it is on), Patroni's own socket, and its standbys' replication
    connections from the group's members (`sources`: pg_hba addresses, by default each member's host)."""
    host = "hostssl" if tls else "host"
    replication = sorted(sources or {f"{m.node.host}/32" for m in members})
    return ["local all all scram-sha-256",
            *(f"{host} replication {HA_REPLICATION_USER} {h} scram-sha-256" for h in replication),
            f"{host} all all all scram-sha-256", "host replication all all reject"]


def archive_parameters(t: Topology, group: Group, paths: MemberPaths, home: Path | None,
                       generation: str | None = None, config: str | None = None) -> dict[str, str]:
    """With backups on: every member archives into its group's stanza once it leads (archive_mode `on`, not
    `always`: a standby archives nothing, pgBackRest refuses `always`, and a promoted standby starts pushing on
    its new timeline into the same stanza). The command names the member's own data directory (pgBackRest
    checks `%p` against pg1-path) and stays the same from the first start: until `up` has created the stanza,
    pushes fail and PostgreSQL keeps the WAL and retries. `generation`: the cluster's stanzas' own after
    `up --from-backup` (pgbackrest.stanza_prefix). `config`: pgBackRest's configuration file where it is not
    the local backend's under `home` (a Docker member's, in its volume)."""
    if not t.backup_on or (home is None and config is None):
        return {}
    assert t.backup is not None
    stanza = _stanza(t, group, generation)
    command = pgbackrest.archive_push(config or pgbackrest.local_config(home or Path()), stanza,
                                      f"--pg1-path={paths.data_dir}")
    return {"archive_mode": "on", "archive_timeout": str(t.backup.archive_timeout), "archive_command": command}


def _stanza(t: Topology, group: Group, generation: str | None) -> str:
    return pgbackrest.stanza_name(pgbackrest.stanza_prefix(t.cluster, generation), group.node.name)


def archive_callback(t: Topology, group: Group, paths: MemberPaths, home: Path | None,
                     generation: str | None = None, config: str | None = None) -> str:
    """With archiving: what a promoted member runs to push the earlier timelines' segments it holds, which its
    old leader may have left unpushed (engines/pgbackrest.py)."""
    assert home is not None or config is not None
    return pgbackrest.push_earlier_timelines(config or pgbackrest.local_config(home or Path()),
                                             _stanza(t, group, generation),
                                             paths.data_dir, f"--pg1-path={paths.data_dir}")


def member_config(t: Topology, group: Group, member: Member, paths: MemberPaths, bindir: Path,
                  tls_dir: Path | None, postgres_password: str, ha_secrets: dict[str, str],
                  etcd: list[EtcdMember], site: Site | None = None, home: Path | None = None,
                  generation: str | None = None, backup_config: str | None = None,
                  settings: bool = True) -> dict[str, Any]:
    """Patroni's configuration of one member (a dict, written as YAML by `render`); `site`: where it is
    reached (by default as a local process, `local_site`); `home`: the cluster's data home on the local
    backend, where the backups' pgBackRest configuration is; `backup_config`: that file elsewhere (a Docker
    member's own, in its container: archiving under HA is built on the local and Docker backends).
    `settings=False`: the bootstrap's PostgreSQL parameters stand in by PARAMETERS_KEPT, as in a member's
    definition: Patroni reads them only when it bootstraps a group, `up` keeps them in the group's dynamic
    configuration, so changing one restarts no member for nothing."""
    core = dcs_core(t)
    tls: dict[str, str] = {}
    socket = len(str(paths.socket_dir)) < 90  # Unix socket paths are limited to ~107 bytes: TCP for deep ones
    parameters: dict[str, str] = {"unix_socket_directories": str(paths.socket_dir) if socket else ""}
    if tls_dir is not None:
        parameters.update(pg_engine.tls_settings(str(tls_dir), citus=group.citus))
        tls = {"sslmode": "verify-full", "sslrootcert": str(tls_dir / CA)}
    parameters.update(archive_parameters(t, group, paths, home, generation, backup_config))
    callbacks = ({"on_role_change": archive_callback(t, group, paths, home, generation, backup_config)}
                 if parameters.get("archive_command") else {})
    site = site or local_site(member, etcd)
    restapi: dict[str, Any] = {"listen": site.rest_listen, "connect_address": site.rest_connect,
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
        "etcd3": {"hosts": list(site.etcd_hosts)},
        "citus": {"group": group.number, "database": t.metadata.database},
        "bootstrap": {
            "dcs": {**core, "postgresql": {
                **core["postgresql"], "parameters": dcs_parameters(t, group) if settings else PARAMETERS_KEPT}},
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth-local": "scram-sha-256"},
                       {"auth-host": "scram-sha-256"}],
        },
        "postgresql": {
            "listen": site.listen,
            "connect_address": site.connect,
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
            "pg_hba": hba_lines(group.members, tls_dir is not None, site.replication_from),
            **({"callbacks": callbacks} if callbacks else {}),
        },
    }
    if not group.citus:  # the analytics primary: a plain Patroni cluster keeping its replicas' slots
        del config["citus"]
        dcs = config["bootstrap"]["dcs"]
        extra = analytics.dcs_settings(t)
        dcs["ignore_slots"] = extra["ignore_slots"]
    if member.name != group.members[0].name and not group.citus:
        # Only the node's own member may bootstrap a new analytics group (Patroni races for it among the members
        # that have a `bootstrap` section): the others wait for it to lead and clone from it. Patroni's Citus mode
        # gives every member a `bootstrap` section (its synchronous_mode: quorum) whatever the file says, so in a
        # Citus group any member may bootstrap a new group: each gets the whole section, and the group starts
        # with `ha:`'s settings and the node's parameters whichever wins. Where data exists (turning ha on, a
        # restore), the backends start the members that hold it first and the others once the group is led.
        del config["bootstrap"]
    return config


def render(config: dict[str, Any]) -> str:
    return "# managed by streamctl: rewritten by every `up`\n" + yaml.safe_dump(config, sort_keys=False)

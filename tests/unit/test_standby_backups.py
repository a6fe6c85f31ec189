"""Backups from a standby under HA on Docker, as far as no engine is needed: each backed-up member's command
(pgBackRest's TLS server beside Patroni, accepting the group's certificate for its stanza only), the options
with which the leader's pgBackRest reaches a standby's data, the choice between a standby and the leader, and
the password file the server's processes read."""

from __future__ import annotations

import subprocess
from pathlib import Path

from streamctl.backends.docker.pgbackrest_server import PASSFILE, member_commands, serves
from streamctl.backup.docker import standby_options
from streamctl.backup.ha import choose_source
from streamctl.config.load import parse_topology
from streamctl.config.members import ha_groups
from streamctl.engines.pgbackrest import passfile
from streamctl.tls import certs
from streamctl.tls.material import NodeTls

HA = {"ha": {"port": 16500}, "analytics": {"enabled": False}, "fdw": {"enabled": False}}


def _tls(common_name: str, names: set[str]) -> NodeTls:
    ca = certs.new_ca("dk")
    pair = certs.issue_server(ca, common_name, names)
    return NodeTls(ca.cert, pair.cert, pair.key)


def test_backed_up_members_run_pgbackrest_tls_server_for_their_group_only(tmp_path: Path) -> None:
    """Each member listens on its own name on the cluster's network (never every address), accepts only the
    group's certificate for the group's stanza, reads libpq's password from a file (none on the line), and then
    runs the member image's entrypoint."""
    t = parse_topology({"cluster": "dk", "backend": "docker", **HA, "backup": {"repository": {"path": "r"}}}, env={})
    group = ha_groups(t)[0]
    tls = _tls(group.node.name, {m.name for m in group.members})
    commands = member_commands(t, group, tls, None)
    assert sorted(commands) == sorted(m.name for m in group.members)
    for m in group.members:
        argv = commands[m.name]
        assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
        line = argv[2]
        assert f"--tls-server-address={m.name} " in line and "--tls-server-address=*" not in line
        assert line.count("--tls-server-auth") == 1
        assert f"--tls-server-auth={group.node.name}=dk-{group.node.name} " in line
        assert f"PGPASSFILE={PASSFILE} setpriv --reuid=postgres" in line
        assert "--tls-server-cert-file=/etc/streamctl/tls/server.crt" in line
        assert line.endswith("done & exec /usr/local/bin/streamctl-ha-member"), line
        assert subprocess.run(["sh", "-n", "-c", line]).returncode == 0
        assert serves({"Config": {"Entrypoint": argv[:1], "Cmd": argv[1:]}})
    assert not serves({"Config": {"Entrypoint": ["/usr/local/bin/streamctl-ha-member"], "Cmd": None}})
    # after `up --from-backup` the stanzas carry the generation
    assert "--tls-server-auth=coordinator=dk-g1-coordinator " in member_commands(t, group, tls, "g1")[
        group.members[0].name][2]
    # a certificate of the topology's own (tls.certificates): its common name, whatever it is
    custom = member_commands(t, group, _tls("custom-cn", {m.name for m in group.members}), None)
    assert "--tls-server-auth=custom-cn=dk-coordinator " in custom[group.members[0].name][2]


def test_no_server_without_tls_or_without_backups() -> None:
    backed = parse_topology({"backend": "docker", **HA, "backup": {"repository": {"path": "r"}}}, env={})
    plain = parse_topology({"backend": "docker", **HA}, env={})
    tls = _tls("coordinator", {"coordinator"})
    assert member_commands(backed, ha_groups(backed)[0], None, None) == {}  # TLS off: no unauthenticated server
    assert member_commands(plain, ha_groups(plain)[0], tls, None) == {}  # no backups: members as before


def test_a_standby_is_reached_as_pgN_through_its_tls_server() -> None:
    assert standby_options(2, "worker-1-2", "postgres", "platform") == [
        "--pg2-path=/var/lib/postgresql/data/data", "--pg2-port=5432",
        "--pg2-socket-path=/var/lib/postgresql/data/run", "--pg2-user=postgres", "--pg2-database=platform",
        "--pg2-host=worker-1-2", "--pg2-host-type=tls", "--pg2-host-port=8432",
        "--pg2-host-cert-file=/etc/streamctl/tls/server.crt", "--pg2-host-key-file=/etc/streamctl/tls/server.key",
        "--pg2-host-ca-file=/etc/streamctl/tls/ca.crt",
        "--pg2-host-config=/var/lib/postgresql/data/pgbackrest/pgbackrest.conf"]


def test_the_source_is_a_standby_when_one_streams_and_can_be_read() -> None:
    options = ["--pg2-host=w-2"]
    assert choose_source("w", ["w-2"], (options, None)) == (
        ["--backup-standby=y", "--pg2-host=w-2"], "from a standby (w-2 streaming from w)")
    # pgBackRest 2.45 fails backup-standby=y when it finds no standby: the leader then
    assert choose_source("w", [], ([], None)) == (["--backup-standby=n"], "from the leader w (no standby streams)")
    assert choose_source("w", ["w-2"], ([], "tls is off")) == (
        ["--backup-standby=n"], "from the leader w (w-2 streaming, but tls is off)")


def test_the_password_file_escapes_what_libpq_reads_as_separators() -> None:
    assert passfile("postgres", "a:b\\c d'e") == "*:*:*:postgres:a\\:b\\\\c d'e\n"


def test_a_stand_in_certificate_has_no_common_name() -> None:
    assert certs.common_name(b"to be issued") is None
    assert certs.common_name(_tls("worker-1", {"worker-1"}).cert) == "worker-1"

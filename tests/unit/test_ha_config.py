"""The topology's `ha:` section: off by default, its layout (members, ports), and each bad input refused with
the key that says it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streamctl.config import load_topology, parse_topology
from streamctl.config.ha_checks import ha_errors
from streamctl.config.members import etcd_members, ha_groups, peer_addresses
from streamctl.errors import ConfigError, ExitCode

LOCAL = {"backend": "local"}
ROOT = Path(__file__).resolve().parents[2]


def test_the_ha_example_loads_with_a_synchronous_standby_per_citus_group() -> None:
    t = load_topology(ROOT / "examples" / "ha.yaml", env={})
    assert t.ha is not None and t.ha.synchronous == "on" and t.ha.ttl == 20
    assert [(g.node.name, [m.name for m in g.members]) for g in ha_groups(t)] == [
        ("coordinator", ["coordinator", "coordinator-2"]), ("worker-1", ["worker-1", "worker-1-2"]),
        ("worker-2", ["worker-2", "worker-2-2"])]


def test_ha_is_off_by_default_and_changes_nothing_then() -> None:
    t = parse_topology({}, env={})
    assert t.ha is None and not t.ha_on and ha_groups(t) == [] and etcd_members(t) == []
    assert not parse_topology({**LOCAL, "ha": {"enabled": False}}, env={}).ha_on


def test_each_citus_group_gets_its_members_and_ports() -> None:
    t = parse_topology({**LOCAL, "ha": {"synchronous": True, "coordinator": {"standbys": 2}}}, env={})
    assert t.ha is not None and t.ha.synchronous == "on"  # YAML's bare `on` reads as true
    layout = [(g.node.name, g.number, [(m.name, m.port, m.rest_port) for m in g.members]) for g in ha_groups(t)]
    assert layout == [
        ("coordinator", 0, [("coordinator", 15432, 18008), ("coordinator-2", 17432, 18009),
                            ("coordinator-3", 17433, 18010)]),
        ("worker-1", 1, [("worker-1", 15433, 18011), ("worker-1-2", 17434, 18012)]),
        ("worker-2", 2, [("worker-2", 15434, 18013), ("worker-2-2", 17435, 18014)]),
    ]
    assert [(e.name, e.port, e.peer_port) for e in etcd_members(t)] == [("etcd-1", 12379, 12380)]
    three = parse_topology({**LOCAL, "ha": {"etcd": {"members": 3, "port": 4000, "peer_port": 4100}}}, env={})
    assert [(e.port, e.peer_port) for e in etcd_members(three)] == [(4000, 4100), (4001, 4101), (4002, 4102)]
    defaults = parse_topology({**LOCAL, "ha": {"etcd": {"members": 3}}}, env={})  # peers after the clients
    assert [(e.port, e.peer_port) for e in etcd_members(defaults)] == [(12379, 12382), (12380, 12383), (12381, 12384)]


BAD: list[tuple[str, dict, str]] = [  # type: ignore[type-arg]
    ("ttl below Patroni's minimum", {"ha": {"ttl": 10, "loop_wait": 2}},
     "ha.ttl: 10 is below Patroni's minimum of 20 seconds"),
    ("loop_wait not below ttl", {"ha": {"ttl": 20, "loop_wait": 20}}, "ha.loop_wait: 20 must be at most ha.ttl - 2"),
    ("synchronous without standbys", {"ha": {"standbys": 0, "synchronous": "on"}},
     "ha.synchronous: 'on' needs a standby to wait for, but ha.standbys is 0"),
    ("quorum with a group's standbys at 0", {"ha": {"workers": {"standbys": 0}, "synchronous": "quorum"}},
     "ha.synchronous: 'quorum' needs a standby to wait for, but ha.workers.standbys is 0"),
    ("unknown synchronous mode", {"ha": {"synchronous": "always"}},
     "ha.synchronous: expected 'off', 'on' or 'quorum', got 'always'"),
    ("two etcd members", {"ha": {"etcd": {"members": 2}}}, "ha.etcd.members: expected 1 or 3, got the number 2"),
    ("too many standbys", {"ha": {"standbys": 9}}, "ha.standbys: must be at most 4, got 9"),
    ("external coordinator", {"metadata": {"coordinator": {"backend": "external"}}, "ha": {}},
     "metadata.coordinator.backend: coordinator is external, and ha runs only the nodes streamctl provisions"),
    ("external workers", {"metadata": {"workers": {"backend": "external"}}, "ha": {}},
     "metadata.workers.backend: worker-1, worker-2 are external"),
    ("a standby's port taken", {"ha": {"port": 15433}},
     "ha.port: port 15433 (coordinator-2's) is already used by worker-1 (metadata.workers.port)"),
    ("a REST port taken", {"ha": {"rest_port": 16379}},
     "ha.rest_port: port 16379 (coordinator's REST API) is already used by redis"),
    ("an etcd port taken", {"ha": {"etcd": {"peer_port": 15442}}},
     "ha.etcd.peer_port: port 15442 (etcd-1's) is already used by analytics.primary"),
    ("ports past 65535", {"ha": {"rest_port": 65534}}, "ha.rest_port: 6 ports from 65534 would need port 65539"),
    ("without Citus nor analytics standbys", {"metadata": {"citus": {"enabled": False}}, "ha": {}},
     "ha: without Citus (metadata.citus.enabled is false) high availability covers only the analytics primary"),
    ("a plain coordinator's standbys", {"metadata": {"citus": {"enabled": False}},
                                        "ha": {"coordinator": {"standbys": 1}, "analytics": {"standbys": 1}}},
     "ha.coordinator.standbys: a plain PostgreSQL coordinator under HA is not built yet"),
    ("an external analytics primary", {"analytics": {"primary": {"backend": "external"}},
                                       "ha": {"analytics": {"standbys": 1}}},
     "analytics.primary.backend: analytics-primary is external"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD, ids=[c[0] for c in BAD])
def test_a_bad_ha_section_is_refused_with_its_path(case: str, data: dict, message: str,  # type: ignore[type-arg]
                                                  tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump({**LOCAL, **data}))
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={})
    assert info.value.exit_code == ExitCode.CONFIG
    assert any(d.startswith(f"{path}: ") and message in d for d in info.value.details), info.value.details


def test_ha_runs_on_every_backend_the_analytics_primary_too_and_swarm_refuses_backups_with_ha(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    for backend in ("docker", "auto", "swarm"):
        path.write_text(yaml.safe_dump({"backend": backend, "bind": "0.0.0.0", "ha": {}}))
        assert load_topology(path, env={}).ha_on
    assert load_topology(path, env={}, backend="local").ha_on
    path.write_text(yaml.safe_dump({"backend": "local", "bind": "0.0.0.0", "ha": {"analytics": {"standbys": 1}}}))
    for backend in ("docker", "auto", "swarm"):  # the analytics primary under HA: every backend
        assert [g.node.name for g in ha_groups(load_topology(path, env={}, backend=backend))][-1:] == \
            ["analytics-primary"]
    backup = {"repository": {"path": "r"}}
    path.write_text(yaml.safe_dump({"backend": "swarm", "bind": "0.0.0.0", "ha": {}, "backup": backup}))
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={})
    assert info.value.exit_code == ExitCode.CONFIG == 3
    assert any("backup: backups with ha run on the local and Docker backends only for now, and this topology "
               "runs coordinator, worker-1, worker-2 under ha on swarm" in d for d in info.value.details), \
        info.value.details
    for backend in ("docker", "auto"):  # backups with ha: local and Docker
        assert load_topology(path, env={}, backend=backend).backup_on
    path.write_text(yaml.safe_dump({"backend": "local", "bind": "0.0.0.0", "metadata": {"citus": {"enabled": False}},
                                    "ha": {"analytics": {"standbys": 1}}, "backup": backup}))
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={}, backend="swarm")  # --backend is judged like the file
    assert any("runs analytics-primary under ha on swarm" in d for d in info.value.details), info.value.details


def test_backups_with_the_analytics_primary_under_ha_run_on_the_local_and_docker_backends(tmp_path: Path) -> None:
    """Its group archives like the Citus groups (Patroni's archive_command into its own stanza, on every member);
    on Docker too (each member's pgBackRest file in its own volume); Swarm refuses backups with ha, naming it."""
    from streamctl.ha import patroni

    path = tmp_path / "topology.yaml"
    data = {"backend": "local", "metadata": {"citus": {"enabled": False}}, "ha": {"analytics": {"standbys": 1}},
            "backup": {"repository": {"path": "/r"}, "archive_timeout": 30}}
    path.write_text(yaml.safe_dump(data))
    t = load_topology(path, env={})
    [group] = ha_groups(t)
    assert t.backup_on and not group.citus and "backup" not in " ".join(ha_errors(t))
    for member in group.members:
        params = patroni.archive_parameters(t, group, patroni.MemberPaths(Path("/h/nodes") / member.name), Path("/h"))
        assert params["archive_mode"] == "on" and params["archive_command"] == (
            f"pgbackrest --config=/h/backup/pgbackrest.conf --stanza={t.cluster}-analytics-primary "
            f"--pg1-path=/h/nodes/{member.name}/data archive-push %p")
    for backend in ("docker", "auto"):
        path.write_text(yaml.safe_dump({**data, "backend": backend}))
        assert load_topology(path, env={}).backup_on
    path.write_text(yaml.safe_dump({**data, "backend": "swarm"}))
    with pytest.raises(ConfigError) as info:
        load_topology(path, env={})
    assert any("backup: backups with ha run on the local and Docker backends only for now, and this topology runs "
               "analytics-primary under ha on swarm" in d for d in info.value.details), info.value.details


def test_the_analytics_members_are_reached_by_name_on_a_container_network_and_by_port_elsewhere() -> None:
    """What a replica's subscription and the FDW name: on Docker (the node's name) and Swarm (its service's,
    `<cluster>-<node>`) the members' network names on the container's port (Patroni's connect_address); on local
    the topology's host and each member's own port."""
    t = parse_topology({"backend": "docker", "metadata": {"citus": {"enabled": False}},
                        "analytics": {"primary": {"port": 16432}},
                        "ha": {"port": 16500, "analytics": {"standbys": 1}}}, env={})
    assert peer_addresses(t, "analytics-primary", "analytics-primary", 5432) == [
        ("analytics-primary", 5432), ("analytics-primary-2", 5432)]
    assert peer_addresses(t, "analytics-primary", f"{t.cluster}-analytics-primary", 5432) == [
        ("analytics-primary", 5432), ("analytics-primary-2", 5432)]
    assert peer_addresses(t, "analytics-primary", "127.0.0.1", 16432) == [("127.0.0.1", 16432), ("127.0.0.1", 16500)]
    assert peer_addresses(t, "analytics-replica-1", "analytics-replica-1", 5432) == []


def test_swarm_places_a_groups_members_on_distinct_hosts_or_says_how_many_it_needs() -> None:
    from streamctl.backends.swarm.ha_place import place_members
    from streamctl.config.constraints import HostFacts, parse

    t = parse_topology({"backend": "swarm", "bind": "0.0.0.0", "metadata": {"citus": {"enabled": True},
                        "workers": {"count": 1}}, "ha": {"etcd": {"members": 3, "peer_port": 12390}}}, env={})
    groups, etcd = ha_groups(t), etcd_members(t)
    hosts = [HostFacts(f"id{i}", f"db-{i}", "manager" if i == 1 else "worker") for i in (1, 2, 3)]
    chosen, problems = place_members(groups, etcd, hosts, {"coordinator": "id1"}, {})
    assert problems == [] and "coordinator" not in chosen
    for names in (["coordinator", "coordinator-2"], ["worker-1", "worker-1-2"], ["etcd-1", "etcd-2", "etcd-3"]):
        assert len({chosen.get(n, "id1") for n in names}) == len(names), chosen
    rules = {"worker-1": (parse("node.role == worker"),), "coordinator": (parse("node.hostname == db-1"),)}
    _, problems = place_members(groups, etcd, hosts[:2], {}, rules)
    assert problems == [
        "coordinator's group (ha.standbys: 1) has 2 members, which need 2 distinct Swarm hosts, and 1 ready, "
        "active host qualifies (db-1)",
        "worker-1's group (ha.standbys: 1) has 2 members, which need 2 distinct Swarm hosts, and 1 ready, active "
        "host qualifies (db-2)",
        "etcd (ha.etcd.members: 3) has 3 members, which need 3 distinct Swarm hosts, and 2 ready, active hosts "
        "qualify (db-1, db-2)"], problems


def _member_config(ha: dict, tls_dir: Path | None = Path("/s/tls"), base: str = "/s/nodes", index: int = 1):  # type: ignore[no-untyped-def,type-arg]
    from streamctl.ha import patroni

    t = parse_topology({**LOCAL, "ha": ha}, env={})
    group = ha_groups(t)[1]
    member = group.members[index]
    secrets = {"replication_password": "r", "rewind_password": "w", "rest_password": "p"}
    return member, patroni.member_config(t, group, member, patroni.MemberPaths(Path(base) / member.name),
                                         Path("/pg/bin"), tls_dir, "super", secrets,
                                         etcd_members(t))


def test_only_the_analytics_primarys_own_member_may_bootstrap_its_group() -> None:
    """A plain Patroni cluster (the analytics primary's) bootstraps only from the file's `bootstrap` section:
    the standbys have none, so they wait for the node's own member and clone from it."""
    from streamctl.ha import patroni

    t = parse_topology({**LOCAL, "ha": {"analytics": {"standbys": 1}}}, env={})
    group = next(g for g in ha_groups(t) if not g.citus)
    confs = [patroni.member_config(t, group, m, patroni.MemberPaths(Path("/s/nodes") / m.name), Path("/pg/bin"),
                                   None, "super", {"replication_password": "r", "rewind_password": "w",
                                                   "rest_password": "p"}, etcd_members(t)) for m in group.members]
    assert ["bootstrap" in c for c in confs] == [True, False], [c["name"] for c in confs]


def test_a_members_patroni_configuration_follows_the_topology() -> None:
    member, conf = _member_config({"synchronous": "on", "ttl": 30, "loop_wait": 10})
    assert (conf["name"], conf["citus"]) == ("worker-1-2", {"group": 1, "database": "metadata_db"})
    _, first = _member_config({"synchronous": "on", "ttl": 30, "loop_wait": 10}, index=0)
    assert first["name"] == "worker-1"
    # Patroni's Citus mode lets any member bootstrap a new group: each has the whole section, the group's settings
    assert conf["bootstrap"] == first["bootstrap"]
    dcs = first["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"], dcs["synchronous_mode"]) == (30, 10, 10, True)
    assert dcs["postgresql"]["use_pg_rewind"] and dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"
    assert dcs["postgresql"]["parameters"]["wal_level"] == "logical"  # the node's own settings
    pg = conf["postgresql"]
    assert pg["listen"] == pg["connect_address"] == f"127.0.0.1:{member.port}"
    assert pg["basebackup"] == [{"checkpoint": "fast"}] and pg["use_unix_socket"]
    assert pg["parameters"]["unix_socket_directories"] == "/s/nodes/worker-1-2/run"
    assert pg["parameters"]["ssl_cert_file"] == "/s/tls/server.crt"
    assert pg["authentication"]["superuser"] == {"username": "streamctl", "password": "super"}
    assert pg["authentication"]["replication"]["sslmode"] == "verify-full"
    assert pg["pg_hba"][:2] == ["local all all scram-sha-256",
                                "hostssl replication streamctl_ha_replicator 127.0.0.1/32 scram-sha-256"]
    rest = conf["restapi"]
    assert rest["authentication"] == {"username": "streamctl", "password": "p"}
    assert rest["certfile"] == "/s/tls/server.crt" and conf["ctl"]["cacert"] == "/s/tls/ca.crt"
    assert conf["etcd3"] == {"hosts": ["127.0.0.1:12379"]}


def test_without_tls_and_with_a_deep_directory_patroni_gets_plain_host_lines_and_tcp() -> None:
    _, conf = _member_config({"synchronous": "quorum", "ttl": 20, "loop_wait": 18}, None, "/" + "d" * 90, index=0)
    assert conf["bootstrap"]["dcs"]["synchronous_mode"] == "quorum"
    assert conf["bootstrap"]["dcs"]["retry_timeout"] == 1  # ttl >= loop_wait + 2 x retry_timeout
    assert "certfile" not in conf["restapi"] and "sslmode" not in conf["postgresql"]["authentication"]["rewind"]
    assert all(not line.startswith("hostssl") for line in conf["postgresql"]["pg_hba"])
    assert conf["postgresql"]["parameters"]["unix_socket_directories"] == ""
    assert conf["postgresql"]["use_unix_socket"] is False


def test_with_backups_every_member_archives_into_its_groups_stanza_from_its_own_data_directory() -> None:
    """archive_command is Patroni's, on every member (a promoted standby archives into the same stanza), with
    the member's own pg1-path; archive_mode `on`, never `always` (pgBackRest refuses it)."""
    from streamctl.ha import patroni

    t = parse_topology({**LOCAL, "ha": {"synchronous": "on"}, "backup": {"repository": {"path": "/r"},
                                                                         "archive_timeout": 30}}, env={})
    group = ha_groups(t)[1]
    for member in group.members:
        paths = patroni.MemberPaths(Path("/h/nodes") / member.name)
        params = patroni.archive_parameters(t, group, paths, Path("/h"))
        assert params == {"archive_mode": "on", "archive_timeout": "30", "archive_command":
                          f"pgbackrest --config=/h/backup/pgbackrest.conf --stanza={t.cluster}-worker-1 "
                          f"--pg1-path=/h/nodes/{member.name}/data archive-push %p"}
    assert patroni.archive_parameters(parse_topology({**LOCAL, "ha": {}}, env={}), group, paths, Path("/h")) == {}
    assert "backup" not in " ".join(ha_errors(t))


def test_the_analytics_primary_is_a_plain_patroni_cluster_only_when_given_standbys() -> None:
    from streamctl.ha import patroni

    assert [g.node.name for g in ha_groups(parse_topology({**LOCAL, "ha": {}}, env={}))] == [
        "coordinator", "worker-1", "worker-2"]  # ha.standbys does not reach it
    t = parse_topology({**LOCAL, "metadata": {"citus": {"enabled": False}},
                        "ha": {"analytics": {"standbys": 1}, "synchronous": "on"}}, env={})
    [group] = ha_groups(t)
    assert (group.node.name, group.number, group.citus) == ("analytics-primary", None, False)
    assert [(m.name, m.port, m.rest_port) for m in group.members] == [
        ("analytics-primary", 15442, 18008), ("analytics-primary-2", 17432, 18009)]
    secrets = {"replication_password": "r", "rewind_password": "w", "rest_password": "p"}
    member = group.members[0]
    conf = patroni.member_config(t, group, member, patroni.MemberPaths(Path("/s") / member.name), Path("/pg/bin"),
                                 Path("/s/tls"), "super", secrets, etcd_members(t))
    assert "citus" not in conf and conf["scope"] == "streamplat-analytics"
    dcs = conf["bootstrap"]["dcs"]
    assert dcs["ignore_slots"] == [{"type": "logical", "database": "analytics_db", "plugin": "pgoutput"}]
    assert dcs["postgresql"]["parameters"]["hot_standby_feedback"] == "on"
    assert dcs["postgresql"]["parameters"]["wal_level"] == "logical" and dcs["postgresql"]["use_slots"]
    assert "citus.node_conninfo" not in conf["postgresql"]["parameters"]
    assert "shared_preload_libraries" not in dcs["postgresql"]["parameters"]


def test_a_scale_moves_no_members_port_the_analytics_groups_included() -> None:
    def layout(workers: int) -> dict[str, tuple[int, int]]:
        t = parse_topology({**LOCAL, "metadata": {"workers": {"count": workers}},
                            "ha": {"analytics": {"standbys": 1}}}, env={})
        assert [g.node.name for g in ha_groups(t)][-1] == "analytics-primary"  # shown after the Citus groups
        return {m.name: (m.port, m.rest_port) for g in ha_groups(t) for m in g.members}

    two, three = layout(2), layout(3)
    assert two["analytics-primary-2"] == (17432, 18009)  # the first of ha.port's and ha.rest_port's runs
    assert {name: three[name] for name in two} == two  # worker-3's group takes the ports after them
    assert set(three) - set(two) == {"worker-3", "worker-3-2"}


def test_the_permanent_slots_follow_the_replicas_and_leave_an_operators_alone() -> None:
    from streamctl.ha import analytics

    t = parse_topology({**LOCAL, "analytics": {"replicas": [{"name": "r-a", "port": 15550},
                                                            {"name": "r-b", "port": 15551}]},
                        "ha": {"analytics": {"standbys": 1}}}, env={})
    spec = {"type": "logical", "database": "analytics_db", "plugin": "pgoutput"}
    assert analytics.slot_changes(t, {}) == {"streamctl_sub_r_a": spec, "streamctl_sub_r_b": spec}
    declared = {"streamctl_sub_r_a": spec, "streamctl_sub_r_b": {**spec, "plugin": "wal2json"},
                "streamctl_sub_gone": spec, "operators_own": spec}
    assert analytics.slot_changes(t, declared) == {"streamctl_sub_r_b": spec, "streamctl_sub_gone": None}
    assert analytics.slot_changes(t, {**declared, "streamctl_sub_r_b": spec, "streamctl_sub_gone": None}) == {}


def test_the_slots_left_by_patroni_are_named_as_it_names_the_nodes_standbys() -> None:
    """Patroni names a member's physical slot in lower case with '-' and '.' as '_' (Patroni's
    slot_name_from_member_name); `up` drops, once ha is off, only those of the node's own standbys."""
    import re

    from streamctl.services.ha import standby_slot_pattern

    worker = next(n for n in parse_topology({"backend": "local"}).nodes() if n.name == "worker-1")
    pattern = re.compile(standby_slot_pattern(worker))
    assert [s for s in ("worker_1_2", "worker_1_13", "worker_10_2", "worker_1", "worker_1_2_x", "pg_backup")
            if pattern.fullmatch(s)] == ["worker_1_2", "worker_1_13"]


def test_a_slots_restart_point_is_named_by_its_wal_segment_as_the_files_are() -> None:
    from streamctl.services.permanent_slots import segment

    assert segment("0/A00E218", 16 << 20) == "000000000000000A"  # file 00000003000000000000000A, any timeline
    assert segment("1/FF000000", 16 << 20) == "00000001000000FF"
    assert segment("0/3000000", 64 << 20) == "0000000000000000"


def test_up_patches_only_the_dynamic_settings_patroni_lacks_nested_sections_key_by_key() -> None:
    from streamctl.services.ha import DYNAMIC, missing_settings

    assert missing_settings({}) == DYNAMIC
    current = {"failsafe_mode": True, "check_timeline": True, "loop_wait": 5,
               "postgresql": {"use_pg_rewind": True, "remove_data_directory_on_rewind_failure": True,
                              "remove_data_directory_on_diverged_timelines": True}}
    assert missing_settings(current) == {}
    current["check_timeline"] = False
    del current["postgresql"]["remove_data_directory_on_diverged_timelines"]  # type: ignore[attr-defined]
    # only what differs, the postgresql section's other keys (use_pg_rewind) left out of the PATCH
    assert missing_settings(current) == {"check_timeline": True, "postgresql": {
        "remove_data_directory_on_diverged_timelines": True}}
    assert missing_settings({"postgresql": None}) == DYNAMIC


def test_up_keeps_the_groups_postgresql_parameters_and_takes_archiving_away_with_the_backups() -> None:
    """The group's dynamic configuration holds the node's settings (what a later topology changes reaches the
    members through it); archive_mode left on after backups are turned off would keep every WAL segment, so it
    is removed (None in a PATCH); a parameter streamctl never sets is an operator's and left alone."""
    from streamctl.ha.patroni import dcs_parameters
    from streamctl.services.ha import kept_settings, missing_settings

    backed = parse_topology({**LOCAL, "ha": {}, "backup": {"repository": {"path": "/r"}, "archive_timeout": 30}},
                            env={})
    plain = parse_topology({**LOCAL, "ha": {}}, env={})
    group, plain_group = ha_groups(backed)[1], ha_groups(plain)[1]
    dcs = {**kept_settings(backed, group), "postgresql": {
        **kept_settings(backed, group)["postgresql"],
        "parameters": {**dcs_parameters(backed, group), "work_mem": "64MB"}}}  # an operator's
    assert dcs["postgresql"]["parameters"]["archive_mode"] == "on"
    assert missing_settings(dcs, kept_settings(backed, group)) == {}
    assert missing_settings(dcs, kept_settings(plain, plain_group)) == {"postgresql": {"parameters": {
        "archive_mode": None, "archive_timeout": None}}}
    # a changed setting, and a group bootstrapped with Patroni's defaults (an earlier release's standby did)
    grown = parse_topology({**LOCAL, "ha": {"analytics": {"standbys": 1}},
                            "analytics": {"max_slot_wal_keep_size": "8GB"}}, env={})
    analytics = next(g for g in ha_groups(grown) if not g.citus)
    wanted = kept_settings(grown, analytics)["postgresql"]["parameters"]
    assert (wanted["max_slot_wal_keep_size"], wanted["hot_standby_feedback"]) == ("8GB", "on")
    lacking = missing_settings({"postgresql": {"parameters": {"max_slot_wal_keep_size": "4GB"}}},
                               kept_settings(grown, analytics))["postgresql"]["parameters"]
    assert lacking["max_slot_wal_keep_size"] == "8GB" and lacking["wal_level"] == "logical"
    assert "archive_mode" not in lacking  # absent and not wanted: nothing to remove


def test_a_members_definition_leaves_out_the_bootstrap_parameters_and_an_earlier_form_counts_as_todays() -> None:
    """Patroni reads the bootstrap's parameters only when it bootstraps a group: changing a setting must not
    restart every member for nothing (up changes the group's configuration instead). A member recorded with
    an earlier form of its definition is the same member."""
    from streamctl.backends.base import fingerprint, made_as
    from streamctl.ha import patroni

    def conf(topology: dict, settings: bool) -> dict:  # type: ignore[type-arg]
        t = parse_topology({**LOCAL, **topology}, env={})
        group = next(g for g in ha_groups(t) if not g.citus)
        m = group.members[0]  # the analytics group's own member: the only one with a bootstrap section
        return patroni.member_config(t, group, m, patroni.MemberPaths(Path("/s") / m.name), Path("/pg/bin"), None,
                                     "super", {"replication_password": "r", "rewind_password": "w",
                                               "rest_password": "p"}, etcd_members(t), settings=settings)

    four = {"ha": {"analytics": {"standbys": 1}}, "analytics": {"max_slot_wal_keep_size": "4GB"}}
    eight = {"ha": {"analytics": {"standbys": 1}}, "analytics": {"max_slot_wal_keep_size": "8GB"}}
    assert conf(four, False) == conf(eight, False) and conf(four, True) != conf(eight, True)
    assert conf(four, False)["bootstrap"]["dcs"]["postgresql"]["parameters"] == patroni.PARAMETERS_KEPT

    def definition(form: int) -> dict:  # type: ignore[type-arg]
        return {"config": conf(four, form >= 1), "passwords": form >= 2}

    today = fingerprint(definition(0))
    assert made_as(fingerprint(definition(1)), definition) == today  # the last release's
    assert made_as(fingerprint(definition(2)), definition) == today  # with Patroni's passwords in it
    assert made_as(fingerprint({"config": conf(eight, True), "passwords": False}), definition) != today
    assert made_as(None, definition) is None

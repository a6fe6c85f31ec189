"""`compose export`: the compose file matches the Docker backend's containers and never holds a secret."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamctl.compose import compose_dict, compose_yaml
from streamctl.config.load import load_topology
from streamctl.config.model import Topology
from tests.support import REPO
from tests.support.cli import streamctl


def test_committed_compose_file_is_the_export_of_the_default_topology() -> None:
    expected = compose_yaml(load_topology(REPO / "topology.yaml"), source="topology.yaml")
    committed = (REPO / "compose" / "docker-compose.yml").read_text()
    assert committed == expected, ("compose/docker-compose.yml is out of date: run `streamctl compose export "
                                   "-f topology.yaml -o compose/docker-compose.yml`")


def test_services_volumes_network_and_ports() -> None:
    t = Topology()
    d = compose_dict(t)
    assert d["name"] == "streamplat"
    assert list(d["services"]) == [n.name for n in t.nodes()]
    assert d["networks"]["cluster"]["name"] == "streamplat-net"
    for node in t.nodes():
        svc = d["services"][node.name]
        assert svc["image"] == node.image
        assert svc["container_name"] == f"streamplat-{node.name}"
        assert svc["ports"] == [{"target": {"postgres": 5432, "redis": 6379, "mongo": 27017}[node.engine.value],
                                 "published": str(node.port), "host_ip": "127.0.0.1", "protocol": "tcp"}]
        (volume,) = svc["volumes"]
        assert d["volumes"][volume["source"]]["name"] == f"streamplat-{node.name}-data"
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert svc["networks"] == {"cluster": {"aliases": [node.name]}}


def test_secrets_are_environment_references_never_values() -> None:
    t = Topology.model_validate({"secrets": {"postgres_password": "pg-secret-value",
                                             "redis_password": "redis-secret-value",
                                             "mongo_password": "mongo-secret-value"}})
    text = compose_yaml(t)
    assert "secret-value" not in text
    d = yaml.safe_load(text)
    assert d["services"]["coordinator"]["environment"]["POSTGRES_PASSWORD"] == \
        "${STREAMCTL_POSTGRES_PASSWORD:?set STREAMCTL_POSTGRES_PASSWORD}"
    assert "${STREAMCTL_REDIS_PASSWORD:?set STREAMCTL_REDIS_PASSWORD}" in d["services"]["redis"]["command"]
    assert d["services"]["mongo"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith(
        "${STREAMCTL_MONGO_PASSWORD:?")


def test_cli_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "compose.yml"
    proc = streamctl("compose", "export", "-f", str(REPO / "examples" / "no-citus.yaml"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    d = yaml.safe_load(out.read_text())
    assert list(d["services"]) == ["coordinator", "analytics-primary", "analytics-replica-1", "redis"]
    printed = streamctl("compose", "export", "-f", str(REPO / "examples" / "no-citus.yaml"))
    assert printed.returncode == 0 and printed.stdout == out.read_text()


def test_backed_up_nodes_mount_the_repository_resolved_from_the_topology_file(tmp_path: Path) -> None:
    """The Docker backend mounts a directory repository into every backed-up node; the export does the same,
    a relative path starting at the topology file's directory (not wherever compose later runs)."""
    topology = tmp_path / "topology.yaml"
    topology.write_text("backup:\n  repository:\n    path: backups/repo\n")
    out = tmp_path / "compose.yml"
    proc = streamctl("compose", "export", "-f", str(topology), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(out.read_text())["services"]
    binds = {name: [v for v in svc["volumes"] if v["type"] == "bind"] for name, svc in services.items()}
    repo = {"type": "bind", "source": str(tmp_path / "backups" / "repo"), "target": "/var/lib/pgbackrest-repo"}
    assert binds["coordinator"] == [repo] and binds["analytics-primary"] == [repo]
    assert binds["redis"] == [] and binds["analytics-replica-1"] == []

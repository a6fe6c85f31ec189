"""A multi-host Swarm for tests: Docker-in-Docker nodes (each a container running its own engine, built by
images/build-swarm-node.sh) on a Docker network the test creates, joined into one Swarm, with the test
images loaded into every nested engine. Everything it makes carries one prefix and is removed at the end.

The nodes run with every capability but CAP_SYS_RESOURCE (--privileged is refused where the bounding set
lacks it), seccomp and system paths unconfined, and all devices allowed; their entrypoint remounts /sys and
the cgroup hierarchies read-write. The nested engines' API (TCP 2375, no TLS) is reachable only on the
test's own network. The kernel here has no IPVS, which is why the backend uses dnsrr and host-mode ports.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamctl.readiness import Readiness
from tests.support.cli import Cli
from tests.support.cluster import save_topology
from tests.support.docker import docker_client, remove_labelled
from tests.support.images import ensure_node_image

TEST_LABEL = "io.streamctl.test"  # on everything made here, with the Swarm's prefix


@dataclass
class DindNode:
    container: str  # the node's container on the test engine
    hostname: str  # its Swarm hostname (db-1, db-2, ...)
    ip: str  # its address on the test network
    swarm_id: str = ""

    @property
    def docker_host(self) -> str:
        return f"tcp://{self.ip}:2375"

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=120)


@dataclass
class DindSwarm:
    prefix: str
    network: str
    nodes: list[DindNode] = field(default_factory=list)

    @property
    def manager(self) -> DindNode:
        return self.nodes[0]

    def node(self, hostname: str) -> DindNode:
        return next(n for n in self.nodes if n.hostname == hostname)


@contextlib.contextmanager
def swarm_cli(swarm: DindSwarm, directory: Path, data: dict[str, Any]) -> Iterator[Cli]:
    """A Cli for `data`, saved in `directory`, on the Swarm through its manager; afterwards the cluster is
    taken down with its volumes, and the directory removed."""
    c = Cli(save_topology(directory, data), backend="swarm", env={"DOCKER_HOST": swarm.manager.docker_host},
            timeout=900)
    try:
        yield c
    finally:
        c.run("down", "--volumes", "--yes")
        shutil.rmtree(directory, ignore_errors=True)


def _start_node(client: Any, swarm: DindSwarm, image: str, index: int) -> DindNode:
    name = f"{swarm.prefix}-node{index}"
    labels = {TEST_LABEL: swarm.prefix}
    client.volumes.create(f"{name}-docker", labels=labels)
    # The CLI, not the SDK: `systempaths=unconfined` is the CLI's spelling of empty masked/read-only paths.
    subprocess.run(["docker", "run", "-d", "--name", name, "--hostname", f"db-{index}", "--network", swarm.network,
                    "--label", f"{TEST_LABEL}={swarm.prefix}", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
                    "--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined",
                    "--device-cgroup-rule", "a *:* rwm", "-v", f"{name}-docker:/var/lib/docker", image],
                   check=True, capture_output=True, timeout=120)
    container = client.containers.get(name)
    ip = container.attrs["NetworkSettings"]["Networks"][swarm.network]["IPAddress"]
    node = DindNode(name, f"db-{index}", ip)

    def answers() -> bool:
        nested = node.client()
        try:
            return bool(nested.ping())
        finally:
            nested.close()

    Readiness(f"the nested engine of {name}", answers, 60.0, interval=0.5,
              logs=lambda: client.containers.get(name).logs(tail=20).decode(errors="replace").splitlines()).wait()
    return node


def _load_images(node: DindNode, archive: Path) -> None:
    with archive.open("rb") as data:
        proc = subprocess.run(["docker", "exec", "-i", node.container, "docker", "load", "-q"], stdin=data,
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"docker load on {node.container} failed: {proc.stderr[-500:]}")


def dind_swarm(images: list[str], count: int = 3) -> Iterator[DindSwarm]:
    """`count` nested engines joined into a Swarm (the first one its manager), `images` loaded into each."""
    node_image = ensure_node_image()
    client = docker_client()
    swarm = DindSwarm(prefix=f"sw{uuid.uuid4().hex[:8]}", network="")
    swarm.network = f"{swarm.prefix}-net"
    try:
        client.networks.create(swarm.network, driver="bridge", labels={TEST_LABEL: swarm.prefix})
        with ThreadPoolExecutor(count) as pool:
            swarm.nodes = list(pool.map(lambda i: _start_node(client, swarm, node_image, i), range(1, count + 1)))
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "images.tar"
            subprocess.run(["docker", "save", "-o", str(archive), *images], check=True, timeout=600)
            with ThreadPoolExecutor(count) as pool:
                list(pool.map(lambda n: _load_images(n, archive), swarm.nodes))
        _join(swarm)
        yield swarm
    finally:
        remove_dind_swarm(swarm.prefix)
        client.close()


def _join(swarm: DindSwarm) -> None:
    manager = swarm.manager.client()
    try:
        manager.swarm.init(advertise_addr=swarm.manager.ip, listen_addr=f"{swarm.manager.ip}:2377")
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        for node in swarm.nodes[1:]:
            nested = node.client()
            try:
                nested.swarm.join(remote_addrs=[f"{swarm.manager.ip}:2377"], join_token=token,
                                  advertise_addr=node.ip, listen_addr=f"{node.ip}:2377")
            finally:
                nested.close()
        by_host = {n.attrs["Description"]["Hostname"]: n.id for n in manager.nodes.list()}
        for node in swarm.nodes:
            node.swarm_id = by_host[node.hostname]
    finally:
        manager.close()


def remove_dind_swarm(prefix: str) -> None:
    """The nodes (with every service, volume and image inside them), their volumes and the test network."""
    remove_labelled(f"{TEST_LABEL}={prefix}")


# -- services and tasks -----------------------------------------------------------------------------------
def services(swarm: DindSwarm, cluster: str) -> list[str]:
    """The cluster's services on the manager: labelled with its name, or named after it."""
    from streamctl.backends.docker.spec import LABEL_CLUSTER

    manager = swarm.manager.client()
    try:
        return sorted({s.name for s in manager.services.list(filters={"label": f"{LABEL_CLUSTER}={cluster}"})}
                      | {s.name for s in manager.services.list() if s.name.startswith(f"{cluster}-")})
    finally:
        manager.close()


def running_host(swarm: DindSwarm, service: str) -> DindNode:
    """The host running the service's one task."""
    manager = swarm.manager.client()
    try:
        tasks = [t for t in manager.services.get(service).tasks() if t["Status"]["State"] == "running"]
    finally:
        manager.close()
    assert len(tasks) == 1, tasks
    return next(n for n in swarm.nodes if n.swarm_id == tasks[0]["NodeID"])


def task_ids(swarm: DindSwarm, service: str) -> set[str]:
    manager = swarm.manager.client()
    try:
        return {t["ID"] for t in manager.services.get(service).tasks() if t["Status"]["State"] == "running"}
    finally:
        manager.close()


def kill_task(swarm: DindSwarm, service: str) -> None:
    """SIGKILL the service's task container on its host, then wait for Swarm's replacement task to run."""
    before = task_ids(swarm, service)
    host = running_host(swarm, service)
    nested = host.client()
    try:
        (container,) = nested.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
        container.kill()
    finally:
        nested.close()

    def replaced() -> bool:
        now = task_ids(swarm, service)
        return bool(now) and not now & before

    Readiness(f"Swarm to replace {service}'s task", replaced, 120.0, interval=0.5).wait()

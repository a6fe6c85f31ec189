"""Helpers for tests against a real Docker engine: the locally built test image, clusters, label cleanup."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamctl.backends.docker.backend import DockerBackend
from streamctl.backends.docker.spec import LABEL_CLUSTER
from tests.conftest import LocalCluster

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGE = os.environ.get("STREAMCTL_TEST_IMAGE", "streamctl-test/pg-redis:bookworm")
CITUS_IMAGE = os.environ.get("STREAMCTL_TEST_CITUS_IMAGE", "streamctl-test/pg-citus:bookworm")
PROMETHEUS_IMAGE = os.environ.get("STREAMCTL_TEST_PROMETHEUS_IMAGE", "streamctl-test/prometheus:bookworm")
CITUS_DIR = Path(os.environ.get("STREAMCTL_CITUS_DIR") or REPO.parent / "shared" / "citus")
_built: dict[str, tuple[str | None, str]] = {}  # script -> (keyed tag it printed, or None; its error output)


def _required(engine: str) -> bool:
    return engine in {e.strip() for e in os.environ.get("STREAMCTL_REQUIRE", "").split(",")}


def _build(script: str) -> tuple[str | None, str]:
    """Run an image build script once per session; its last stdout line is the tag keyed by its inputs."""
    if script not in _built:
        env = {**os.environ, "STREAMCTL_TEST_IMAGE": TEST_IMAGE, "STREAMCTL_TEST_CITUS_IMAGE": CITUS_IMAGE,
               "STREAMCTL_TEST_PROMETHEUS_IMAGE": PROMETHEUS_IMAGE, "STREAMCTL_CITUS_DIR": str(CITUS_DIR)}
        proc = subprocess.run(["bash", str(REPO / "images" / script)], capture_output=True, text=True, env=env,
                              timeout=1800)
        lines = proc.stdout.split()
        tag = lines[-1] if proc.returncode == 0 and lines else None
        _built[script] = (tag, f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
    return _built[script]


def ensure_test_image() -> str:
    """The test image for this checkout's build inputs (images/build.sh reuses an up-to-date one)."""
    tag, error = _build("build.sh")
    if tag is None:
        message = f"cannot build the test image {TEST_IMAGE} with images/build.sh:\n{error}"
        if _required("docker"):
            pytest.fail(message)
        pytest.skip(message)
    return tag


def ensure_prometheus_image() -> str:
    """The Prometheus test image (images/build-prometheus.sh: Debian's package in the official image's
    layout), for monitoring.image: the official image cannot be pulled here."""
    tag, error = _build("build-prometheus.sh")
    if tag is None:
        message = f"cannot build the Prometheus test image {PROMETHEUS_IMAGE} with images/build-prometheus.sh:\n{error}"
        if _required("docker"):
            pytest.fail(message)
        pytest.skip(message)
    return tag


def ensure_citus_image() -> str:
    """The Citus test image (images/build-citus.sh), built from the Citus build in ../shared/citus; without
    that build the test skips with the reason (fails when STREAMCTL_REQUIRE lists citus)."""
    ensure_test_image()
    if not sorted(CITUS_DIR.glob("citus-*-pg15-amd64.tar.gz")):
        message = (f"no Citus build (citus-*-pg15-amd64.tar.gz) in {CITUS_DIR}: the Citus test image cannot be "
                   "built (set STREAMCTL_CITUS_DIR)")
    else:
        tag, error = _build("build-citus.sh")
        if tag is not None:
            return tag
        message = f"cannot build the Citus test image {CITUS_IMAGE} with images/build-citus.sh:\n{error}"
    if _required("citus"):
        pytest.fail(message)
    pytest.skip(message)


def unique_cluster() -> str:
    """Docker names are global: every test cluster gets its own name (and so its own network)."""
    return f"t{uuid.uuid4().hex[:10]}"


def use_image(data: dict[str, Any], image: str) -> dict[str, Any]:
    """Point every node of a topology dict at `image` (the registry images cannot be pulled here)."""
    data["metadata"]["coordinator"]["image"] = image
    data["metadata"].setdefault("workers", {})["image"] = image
    if data["analytics"].get("primary") is not None:
        data["analytics"]["primary"]["image"] = image
    data["mongo"]["image"] = image
    data["redis"]["image"] = image
    return data


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def remove_cluster_resources(cluster: str) -> None:
    """Remove every container, volume and network labelled for `cluster`, whatever state they are in."""
    client = docker_client()
    try:
        flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
        for container in client.containers.list(all=True, filters=flt):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters=flt):
            volume.remove(force=True)
        for network in client.networks.list(filters=flt):
            network.remove()
    finally:
        client.close()


def cluster_resources(cluster: str) -> dict[str, list[str]]:
    client = docker_client()
    try:
        flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
        return {"containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
                "volumes": sorted(v.name for v in client.volumes.list(filters=flt)),
                "networks": sorted(n.name for n in client.networks.list(filters=flt))}
    finally:
        client.close()


class DockerCluster(LocalCluster):
    """A real cluster of containers, its topology file in a temporary directory."""

    backend_class = DockerBackend
    timeout = 90.0

    @property
    def cluster(self) -> str:
        return self.topology.cluster

    def edit(self, change: Any) -> None:
        """Apply `change(dict)` to the topology file and reload."""
        data = yaml.safe_load(self.path.read_text())
        change(data)
        self.path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.reload()

    def destroy(self) -> None:
        try:
            remove_cluster_resources(self.cluster)
        finally:
            shutil.rmtree(self.path.parent, ignore_errors=True)

"""The locally built test images (no registry is reachable here): built once per session by images/*.sh,
each keyed by its inputs (the script prints the keyed tag last). A test whose image cannot be built skips
with the reason, or fails when STREAMCTL_REQUIRE lists the engine it needs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import REPO
from tests.support.engines import skip_or_fail

TEST_IMAGE = os.environ.get("STREAMCTL_TEST_IMAGE", "streamctl-test/pg-redis:bookworm")
CITUS_IMAGE = os.environ.get("STREAMCTL_TEST_CITUS_IMAGE", "streamctl-test/pg-citus:bookworm")
PROMETHEUS_IMAGE = os.environ.get("STREAMCTL_TEST_PROMETHEUS_IMAGE", "streamctl-test/prometheus:bookworm")
NODE_IMAGE = os.environ.get("STREAMCTL_TEST_NODE_IMAGE", "streamctl-test/swarm-node:bookworm")
PG17_IMAGE = os.environ.get("STREAMCTL_PG17_IMAGE", "streamctl-test/pg:trixie-17")
CITUS_DIR = Path(os.environ.get("STREAMCTL_CITUS_DIR") or REPO.parent / "shared" / "citus")
_built: dict[str, tuple[str | None, str]] = {}  # script -> (keyed tag it printed, or None; its error output)


def _build(script: str) -> tuple[str | None, str]:
    """Run an image build script once per session; its last stdout line is the tag keyed by its inputs."""
    if script not in _built:
        env = {**os.environ, "STREAMCTL_TEST_IMAGE": TEST_IMAGE, "STREAMCTL_TEST_CITUS_IMAGE": CITUS_IMAGE,
               "STREAMCTL_TEST_PROMETHEUS_IMAGE": PROMETHEUS_IMAGE, "STREAMCTL_TEST_NODE_IMAGE": NODE_IMAGE,
               "STREAMCTL_PG17_IMAGE": PG17_IMAGE, "STREAMCTL_CITUS_DIR": str(CITUS_DIR)}
        proc = subprocess.run(["bash", str(REPO / "images" / script)], capture_output=True, text=True, env=env,
                              timeout=1800)
        lines = proc.stdout.split()
        tag = lines[-1] if proc.returncode == 0 and lines else None
        _built[script] = (tag, f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
    return _built[script]


def _image(script: str, what: str, engine: str = "docker") -> str:
    tag, error = _build(script)
    if tag is None:
        skip_or_fail(engine, f"cannot build {what} with images/{script}:\n{error}")
    return tag


def ensure_test_image() -> str:
    """The test image for this checkout's build inputs (images/build.sh reuses an up-to-date one)."""
    return _image("build.sh", f"the test image {TEST_IMAGE}")


def ensure_prometheus_image() -> str:
    """The Prometheus test image (Debian's package in the official image's layout), for monitoring.image: the
    official image cannot be pulled here."""
    return _image("build-prometheus.sh", f"the Prometheus test image {PROMETHEUS_IMAGE}")


def ensure_citus_image() -> str:
    """The Citus test image, built from the Citus build in ../shared/citus (STREAMCTL_CITUS_DIR); without that
    build the test skips with the reason (fails when STREAMCTL_REQUIRE lists citus)."""
    ensure_test_image()
    if not sorted(CITUS_DIR.glob("citus-*-pg15-amd64.tar.gz")):
        skip_or_fail("citus", f"no Citus build (citus-*-pg15-amd64.tar.gz) in {CITUS_DIR}: the Citus test image "
                              "cannot be built (set STREAMCTL_CITUS_DIR)")
    return _image("build-citus.sh", f"the Citus test image {CITUS_IMAGE}", "citus")


def ensure_pg17_image() -> str:
    """PostgreSQL 17 beside the test image's 15 (images/build-pg17.sh), under its plain tag. Needs a Debian
    mirror: in CI (STREAMCTL_REQUIRE lists docker) there is one, so a failed build is a failure."""
    _image("build-pg17.sh", PG17_IMAGE)
    return PG17_IMAGE


def ensure_node_image() -> str:
    """The Swarm test node: a nested Docker engine (images/build-swarm-node.sh), for tests/support/dind.py."""
    return _image("build-swarm-node.sh", f"the Swarm node image {NODE_IMAGE}")

"""Docker `up` prepares before it touches anything: every image present first (an unpullable one changes
nothing), and a PostgreSQL node's image moved to another major version over its data is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamctl.errors import BackendError, ExitCode, RefusedError
from tests.support.docker import cluster_resources, docker_client
from tests.support.images import ensure_pg17_image

pytestmark = [pytest.mark.docker]


def test_an_unpullable_image_fails_up_before_any_container_exists(make_docker_cluster) -> None:
    c = make_docker_cluster(replicas=1, fdw=False)
    # A registry on a closed loopback port: the pull fails at once and no traffic leaves this machine.
    missing = f"127.0.0.1:1/streamctl-test/missing-{uuid.uuid4().hex[:8]}:none"
    c.edit(lambda d: d["analytics"]["replicas"][0].update(image=missing))
    events: list[Any] = []
    c.runner.emit = events.append
    with pytest.raises(BackendError) as err:
        c.runner.up()
    assert missing in err.value.message and "no node was created or changed" in err.value.details
    assert cluster_resources(c.cluster) == {"containers": [], "volumes": [], "networks": []}
    assert not any(e.kind in ("begin", "done") for e in events)  # no node step started


def test_a_major_version_change_over_existing_data_is_refused_untouched(make_docker_cluster) -> None:
    pg17 = ensure_pg17_image()
    c = make_docker_cluster(replicas=0, fdw=False, redis=False)
    c.up()
    client = docker_client()
    try:
        name = f"{c.cluster}-analytics-primary"
        before = client.containers.get(name)
        volume_before = client.volumes.get(f"{name}-data").attrs
        c.edit(lambda d: d["analytics"]["primary"].update(image=pg17))
        with pytest.raises(RefusedError) as err:
            c.up()
        assert err.value.exit_code == ExitCode.REFUSED
        text = " ".join([err.value.message, *err.value.details, err.value.hint or ""])
        for needed in ("analytics-primary", "PostgreSQL 15", "PostgreSQL 17", "pg_upgrade", "dump"):
            assert needed in text, text
        after = client.containers.get(name)
        assert (after.id, after.status, after.attrs["Created"]) == (before.id, "running", before.attrs["Created"])
        assert client.volumes.get(f"{name}-data").attrs == volume_before
        # Without its container (volume only), the data's version is read from the volume itself.
        after.remove(force=True)
        with pytest.raises(RefusedError):
            c.up()
        assert cluster_resources(c.cluster)["containers"] == [f"{c.cluster}-coordinator"]
    finally:
        client.close()

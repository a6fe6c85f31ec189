"""The gateway's token beyond loopback: `streamctl gateway --host 0.0.0.0` as a user runs it, against a real
local cluster (PostgreSQL, Redis). Every route needs the token except gateway.public_routes; an empty or
unreadable token file stops the gateway instead of serving without a guard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import streamctl
from tests.support.cluster import LocalCluster, write_topology
from tests.support.gateway import Dataset, gateway, gateway_serving, module_cluster
from tests.support.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PUBLIC = ["/api/v1/content/ids", "/api/v1/content/{id}", "/openapi.json"]


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[LocalCluster, Dataset]]:
    yield from module_cluster("gwguard", gateway={"port": free_port(), "public_routes": PUBLIC})


@pytest.mark.parametrize("workers", [1, 2])
def test_beyond_loopback_every_route_but_the_public_ones_needs_the_token(
        platform: tuple[LocalCluster, Dataset], workers: int) -> None:
    c, data = platform
    with gateway_serving(c, "0.0.0.0", "--workers", str(workers)) as base:
        token = (c.ctx.store.root / "gateway-token").read_text().strip()
        user = data.users[0]
        bearer = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=10) as client:
            guarded = ["/api/v1/content/users/ids", f"/api/v1/content/users/{user}/watch-history", "/health",
                       "/api/v1/ops/replication", "/", "/api-docs", "/static/dashboard.js",
                       "/api/v1/content/trending/daily", f"/api/v1/content/{next(iter(data.content))}/details"]
            for path in guarded:
                refused = client.get(path)
                assert refused.status_code == 401, path
                assert refused.json()["error"]["code"] == "unauthorized"
                assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
                assert client.get(path, headers=bearer).status_code == 200, path
            history = client.get(f"/api/v1/content/users/{user}/watch-history", headers=bearer).json()
            assert len(history["items"]) == len(data.history[user])
            ids = client.get("/api/v1/content/users/ids", headers=bearer).json()["items"]
            assert sorted(ids) == sorted(str(u) for u in data.users)
            assert client.post(f"/api/v1/content/{next(iter(data.content))}/views/increment").status_code == 401
            # gateway.public_routes: exact paths and {name} segments, nothing beyond them
            assert client.get("/api/v1/content/ids").status_code == 200
            assert client.get(f"/api/v1/content/{next(iter(data.content))}").status_code == 200
            assert client.get("/openapi.json").status_code == 200
            assert client.get(f"/api/v1/content/{next(iter(data.content))}/reviews").status_code == 401


def test_loopback_needs_no_token(platform: tuple[LocalCluster, Dataset]) -> None:
    c, data = platform
    with gateway_serving(c, "127.0.0.1") as base:
        assert httpx.get(f"{base}/api/v1/content/users/ids", timeout=10).status_code == 200


@pytest.mark.parametrize("content", ["", "\n", "short\n"])
def test_an_empty_or_unusable_token_file_stops_the_gateway(platform: tuple[LocalCluster, Dataset],
                                                           content: str) -> None:
    c, _ = platform
    path = c.ctx.store.root / "gateway-token"
    kept = path.read_text() if path.exists() else None
    path.write_text(content)
    try:
        proc, port = gateway(c, "0.0.0.0")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0
        assert "gateway-token" in err and "remove the file" in err
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/content/users/ids", timeout=2)
    finally:
        if kept is None:
            path.unlink()
        else:
            path.write_text(kept)


def test_an_unreadable_token_file_stops_the_gateway(platform: tuple[LocalCluster, Dataset]) -> None:
    c, _ = platform
    path = c.ctx.store.root / "gateway-token"
    kept = path.read_text() if path.exists() else None
    path.unlink(missing_ok=True)
    path.mkdir()  # a directory where the file should be: unreadable as a token, even for root
    try:
        proc, _port = gateway(c, "0.0.0.0")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "cannot be read" in err
    finally:
        path.rmdir()
        if kept is not None:
            path.write_text(kept)


def test_a_public_route_that_is_not_a_pattern_is_a_topology_error(tmp_path: Path) -> None:
    topo = write_topology(tmp_path, cluster="gwbad", gateway={"public_routes": ["api/v1/*/x"]})
    done = streamctl("gateway", "-f", str(topo), timeout=60)
    assert done.returncode != 0
    assert "gateway.public_routes" in done.stdout + done.stderr

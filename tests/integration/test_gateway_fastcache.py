"""The gateway's pipelined Redis GET against a real Redis: values, misses, ordering under concurrency,
a refused password, and recovery after the connection drops."""

from __future__ import annotations

import asyncio

import pytest

from streamctl.gateway.fastcache import CacheReader

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def redis_node(make_cluster):
    c = make_cluster(analytics=False, fdw=False, replicas=0)
    c.up()
    ep = c.ctx.endpoint("redis")
    return c, ep.host, ep.port, c.ctx.secrets["redis_password"]


def _reader(c, host: str, port: int, password: str) -> CacheReader:
    """Over TLS (the cluster's default), verifying Redis against the cluster CA."""
    return CacheReader(host, port, password, ca=c.ctx.redis_ca())


def test_concurrent_gets_get_their_own_values(redis_node) -> None:
    c, host, port, password = redis_node
    client = c.ctx.redis()
    client.mset({f"k{i}": f"value-{i}" * (i % 7 + 1) for i in range(500)})
    client.set("binary", b"\x00\r\n$-1\r\n")
    client.close()

    async def scenario() -> None:
        reader = _reader(c, host, port, password)
        try:
            keys = [f"k{i}" for i in range(500)] + ["missing", "binary"]
            values = await asyncio.gather(*(reader.get(k) for k in keys))
            assert values[:500] == [(f"value-{i}" * (i % 7 + 1)).encode() for i in range(500)]
            assert values[500] is None
            assert values[501] == b"\x00\r\n$-1\r\n"
        finally:
            await reader.close()

    asyncio.run(scenario())


def test_wrong_password_is_refused(redis_node) -> None:
    c, host, port, _password = redis_node

    async def scenario() -> None:
        reader = _reader(c, host, port, "not-the-password")
        with pytest.raises(ConnectionError, match="refused"):
            await reader.get("k")

    asyncio.run(scenario())


def test_reconnects_after_the_connection_is_killed(redis_node) -> None:
    c, host, port, password = redis_node
    admin = c.ctx.redis()
    admin.set("k", "v")

    async def scenario() -> None:
        reader = _reader(c, host, port, password)
        try:
            assert await reader.get("k") == b"v"
            admin.client_kill_filter(_type="normal", skipme=True)
            with pytest.raises((ConnectionError, OSError)):
                for _ in range(50):  # the loss is noticed by the first GET after the kill
                    await reader.get("k")
                    await asyncio.sleep(0.01)
            assert await reader.get("k") == b"v"  # a fresh connection
        finally:
            await reader.close()

    asyncio.run(scenario())
    admin.close()

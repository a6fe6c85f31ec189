"""Free loopback ports, for the tests and the benchmarks (bench/common.py), so neither touches a running
cluster: one topology needs distinct ones, and Citus workers a run of them."""

from __future__ import annotations

import os
import random
import socket

_GIVEN: set[int] = set()  # the kernel may hand a just-closed port out again
# Below Linux's ephemeral range (32768 and up by default): a port the kernel picks for an outgoing connection
# (the tests make thousands) never lands on one a test cluster is about to listen on. Seen: a standby's
# published port, chosen free at the module's start, taken by a connection minutes later.
LOW, HIGH = 20000, 32000


def _slice(low: int, high: int) -> tuple[int, int]:
    """Under pytest-xdist each worker process draws from a slice of its own: two workers never pick the same
    port between one choosing it and its server binding it."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (high - low) // max(count, 1)
    return low + index * size, low + (index + 1) * size


LOW, HIGH = _slice(LOW, HIGH)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port free now, below the ephemeral range, and not returned before by this process."""
    for _ in range(10000):
        port = random.randrange(LOW, HIGH)
        if port not in _GIVEN and _free(port):
            _GIVEN.add(port)
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 between {LOW} and {HIGH}")


def free_port_run(n: int) -> int:
    """A port p with p .. p+n-1 all free on 127.0.0.1 (worker i listens on port + i - 1, so a single free
    port is not enough: worker-2's would collide with whatever took port + 1). None of them was returned
    before, nor will be again."""
    for _ in range(50):
        base = free_port()
        if base + n > HIGH or any(port in _GIVEN for port in range(base + 1, base + n)):
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            _GIVEN.update(range(base, base + n))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {n} free ports on 127.0.0.1")

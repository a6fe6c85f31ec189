"""Free loopback ports, for the tests and the benchmarks (bench/common.py), so neither touches a running
cluster: one topology needs distinct ones, and Citus workers a run of them."""

from __future__ import annotations

import socket

_GIVEN: set[int] = set()  # the kernel may hand a just-closed port out again


def free_port() -> int:
    """A loopback port free now and not returned before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def free_port_run(n: int) -> int:
    """A port p with p .. p+n-1 all free on 127.0.0.1 (worker i listens on port + i - 1, so a single free
    port is not enough: worker-2's would collide with whatever took port + 1). None of them was returned
    before, nor will be again."""
    for _ in range(50):
        base = free_port()
        if base + n > 65535 or any(port in _GIVEN for port in range(base + 1, base + n)):
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

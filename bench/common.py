"""What the benchmarks share: free loopback ports, so a benchmark never touches a running cluster."""

from __future__ import annotations

import socket

_GIVEN: set[int] = set()  # the kernel may hand a just-closed port out again: one topology needs distinct ones


def free_port() -> int:
    """A loopback port free now and not returned before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port

"""What the benchmarks share: free loopback ports, so a benchmark never touches a running cluster."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

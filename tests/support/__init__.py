"""What the tests share besides fixtures (those stay in the conftest.py files, where pytest finds them), one
module per concern: `ports` (free loopback ports, also for bench/), `engines` (which engines this machine
has, and skip-or-fail), `cluster` (topologies on free ports, local clusters), `cli` (the one way to run the
`streamctl` command), `images` (the locally built test images), `docker`, `swarm` and `dind` (Docker, a
single-node Swarm, a multi-host Docker-in-Docker Swarm), `external` (PostgreSQL servers made by hand),
`mongo`, `gateway` (a cluster with known data, the gateway served), `platform` (rows, logins and checks
several test modules make), `monitoring` (what the tests ask Prometheus) and `schema` (a JSON Schema check).
No test module imports another test module: what two of them need lives here."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: examples/, topology.yaml, images/

"""What `up` learned, kept under the per-cluster state directory: endpoints (state.json) and secrets (0600)."""

from __future__ import annotations

import json
import os
import secrets as _secrets
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamctl.config.model import Topology
from streamctl.errors import NotFoundError

SECRET_KEYS = ("postgres_password", "replication_password", "fdw_password", "gateway_password",
               "redis_password", "mongo_password", "mongo_app_password")


@dataclass(frozen=True)
class Endpoint:
    """How to reach a node: from this host (host/port) and from the other nodes (internal_*)."""

    name: str
    role: str
    engine: str
    backend: str
    host: str
    port: int
    internal_host: str
    internal_port: int
    database: str | None = None
    tls_dir: str | None = None  # where the server keeps its certificates, as the server itself sees it


def cluster_dir(topology: Topology, base: Path, override: str | Path | None = None) -> Path:
    """<state_dir>/<cluster>; a relative state_dir is taken from the topology file's directory."""
    root = Path(override) if override else Path(topology.state_dir)
    if not root.is_absolute():
        root = base / root
    return (root / topology.cluster).absolute()


def _atomic_write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StateStore:
    """Reads and writes the cluster's state files; the only place that knows their layout."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def exists(self) -> bool:
        return self.state_file.exists()

    # -- state.json -------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {}
        return json.loads(self.state_file.read_text())

    def write(self, data: dict[str, Any]) -> None:
        _atomic_write(self.state_file, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o644)

    def update(self, **fields: Any) -> dict[str, Any]:
        data = self.read()
        data.update(fields)
        self.write(data)
        return data

    def record_endpoints(self, backend: str, endpoints: list[Endpoint]) -> None:
        self.update(backend=backend, nodes={e.name: asdict(e) for e in endpoints})

    def forget(self, names: list[str]) -> None:
        """Drop nodes from the state once they are removed (orphans removed, workers scaled away)."""
        data = self.read()
        nodes = data.get("nodes", {})
        if any(n in nodes for n in names):
            data["nodes"] = {k: v for k, v in nodes.items() if k not in names}
            self.write(data)

    def endpoints(self) -> dict[str, Endpoint]:
        return {name: Endpoint(**e) for name, e in self.read().get("nodes", {}).items()}

    def endpoint(self, name: str) -> Endpoint:
        eps = self.endpoints()
        if not eps:
            raise NotFoundError(f"no state for this cluster under {self.root}",
                                hint="run `streamctl up` first")
        if name not in eps:
            raise NotFoundError(f"unknown node {name!r}", hint=f"known nodes: {', '.join(sorted(eps))}")
        return eps[name]

    # -- secrets.json (mode 0600) -----------------------------------------------------------------
    def known_secrets(self, topology: Topology) -> dict[str, str]:
        """The secrets, or blanks before the first `up`: status and dry runs must not create them."""
        try:
            return self.secrets(topology)
        except NotFoundError:
            return defaultdict(str)

    def secrets(self, topology: Topology, create: bool = False) -> dict[str, str]:
        """Secrets fixed in the topology win; the rest are generated once and kept (mode 0600)."""
        stored: dict[str, str] = {}
        if self.secrets_file.exists():
            stored = json.loads(self.secrets_file.read_text())
        fixed = {k: v for k, v in topology.secrets.model_dump().items() if v}
        merged = dict(stored)
        changed = False
        for key in SECRET_KEYS:
            if key in fixed:
                if merged.get(key) != fixed[key]:
                    merged[key], changed = fixed[key], True
            elif key not in merged:
                if not create:
                    raise NotFoundError(f"no secrets for this cluster under {self.root}",
                                        hint="run `streamctl up` first")
                merged[key], changed = _secrets.token_urlsafe(24), True
        if changed and create:
            _atomic_write(self.secrets_file, json.dumps(merged, indent=2) + "\n", 0o600)
        return merged

"""What `up` learned, kept under the per-cluster state directory: endpoints (state.json) and secrets (0600)."""

from __future__ import annotations

import json
import secrets as _secrets
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streamctl.atomic import write_file
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


GATEWAY_TOKEN_FILE = "gateway-token"


class StateStore:
    """Reads and writes the cluster's state files; the only place that knows their layout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "state.json"
        self.secrets_file = root / "secrets.json"
        self.rotations_file = root / "rotations.json"
        self.gateway_token_file = root / GATEWAY_TOKEN_FILE  # the gateway's ops token (0600)

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
        write_file(self.state_file, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o644)

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

    def pinned(self) -> dict[str, str]:
        """Name -> the address of the host it is pinned to (Swarm's pins: an HA member is reached there)."""
        return {n: str(p["addr"]) for n, p in self.read().get("swarm_pins", {}).items() if p.get("addr")}

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
        """Secrets fixed in the topology win; the rest are generated once and kept (mode 0600). These are the
        wanted values: where one differs from the applied record (rotations.json), a rotation is pending."""
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
        if create:
            # What the engines have (or are about to be created with), recorded once per key: the stored value
            # where a topology edit replaces one (the old password still logs in), else the new one.
            self._keep_applied({**merged, **stored})
        if changed and create:
            write_file(self.secrets_file, json.dumps(merged, indent=2) + "\n", 0o600)
        return merged

    def set_secret(self, key: str, value: str) -> None:
        """Store a new wanted value (rotate-secrets); the applied record keeps the old one until it is applied."""
        stored = json.loads(self.secrets_file.read_text()) if self.secrets_file.exists() else {}
        self._keep_applied(stored)
        stored[key] = value
        write_file(self.secrets_file, json.dumps(stored, indent=2) + "\n", 0o600)

    # -- rotations.json (mode 0600): what the engines were last given, and values being rotated to ------
    def rotations(self) -> dict[str, dict[str, Any]]:
        """{"applied": {key: value every node has}, "pending": {key: [values some node may have]}}."""
        if not self.rotations_file.exists():
            return {"applied": {}, "pending": {}}
        data = json.loads(self.rotations_file.read_text())
        return {"applied": dict(data.get("applied", {})), "pending": dict(data.get("pending", {}))}

    def _write_rotations(self, data: dict[str, dict[str, Any]]) -> None:
        write_file(self.rotations_file, json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)

    def _keep_applied(self, stored: dict[str, str]) -> None:
        """The first time a key is seen, its stored value is what the engines have: record it as applied."""
        data = self.rotations()
        missing = {k: v for k, v in stored.items() if k in SECRET_KEYS and k not in data["applied"]}
        if missing:
            data["applied"].update(missing)
            self._write_rotations(data)

    def applied_secrets(self) -> dict[str, str]:
        return self.rotations()["applied"]

    def begin_rotation(self, key: str, value: str) -> None:
        """Remember `value` as one some node may be given from now on, until it is applied everywhere."""
        data = self.rotations()
        tried = data["pending"].setdefault(key, [])
        if value not in tried and value != data["applied"].get(key):
            tried.append(value)
            self._write_rotations(data)

    def record_applied(self, key: str, value: str) -> None:
        """Every place holding `key` now has `value`: the old one and the pending ones can be forgotten."""
        data = self.rotations()
        data["applied"][key] = value
        data["pending"].pop(key, None)
        self._write_rotations(data)

    def login_candidates(self, key: str, wanted: str) -> list[str]:
        """The values a login for `key` may need mid-rotation: the wanted one first, then the applied one,
        then any value a half-done rotation may have left on a node."""
        data = self.rotations()
        out = [wanted]
        for value in (data["applied"].get(key), *data["pending"].get(key, [])):
            if value and value not in out:
                out.append(value)
        return out

    def login_fallbacks(self, topology: Topology) -> dict[str, list[str]]:
        """For readiness probes: per login secret, the passwords to try when the wanted one is refused."""
        known = self.known_secrets(topology)
        return {k: self.login_candidates(k, known[k])[1:] for k in ("postgres_password", "redis_password")
                if known[k]}

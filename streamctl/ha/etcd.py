"""An etcd member of Patroni's DCS: its command line (clients and peers on private addresses, data in the
state), and the list of peers it starts with."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from streamctl.config.members import EtcdMember


def initial_cluster(members: list[EtcdMember]) -> str:
    return ",".join(f"{m.name}=http://{m.host}:{m.peer_port}" for m in members)


def argv(binary: str, member: EtcdMember, members: list[EtcdMember], data_dir: Path, cluster: str,
         listen: str | None = None) -> list[str]:
    """etcd in the foreground, for one member of `members` (the cluster token keeps clusters apart); `listen`:
    the address it binds when that is not its host (a container's 0.0.0.0, reached by its network name)."""
    client, peer = f"http://{member.host}:{member.port}", f"http://{member.host}:{member.peer_port}"
    bound = listen or member.host
    return [binary, "--name", member.name, "--data-dir", str(data_dir),
            "--listen-client-urls", f"http://{bound}:{member.port}", "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://{bound}:{member.peer_port}", "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initial_cluster(members), "--initial-cluster-token", f"streamctl-{cluster}",
            "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr"]


def healthy(member: EtcdMember, timeout: float = 2.0) -> bool:
    """etcd's own health endpoint: True when the member answers and its cluster has a quorum (raises OSError
    when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{member.host}:{member.port}/health", timeout=timeout) as response:  # noqa: S310
            return str(json.loads(response.read()).get("health")) == "true"
    except urllib.error.HTTPError:  # it answered, unhealthy (503 while it has no quorum)
        return False

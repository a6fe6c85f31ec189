"""Docker: whose a container, service, volume or network is (ownership.py), and the cluster's network.

Labels cannot change on a Docker volume, so the volume's label names the instance that created it and a
marker file at the volume's root names the one that owns it now (written on every container creation, so
`up --adopt` moves it); the marker wins."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from streamctl.backends.docker import volume_copy as host
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.docker.files import put_file
from streamctl.backends.docker.spec import LABEL_CLUSTER, LABEL_NODE
from streamctl.errors import BackendError, PreflightError
from streamctl.ownership import LABEL_INSTANCE, LABEL_STATE_DIR, MARKER, Ownership, parse_marker

Owner = tuple[str | None, str | None]  # (instance id, the owner's state directory)


def write_marker(api: Any, container_id: str, mount: str, text: str, name: str) -> None:
    """The marker at the root of the (created, not yet started) container's volume."""
    put_file(api, container_id, mount, MARKER, text, f"write the instance marker into {name}")


def find_named(get: Callable[[str], Any], labels_of: Callable[[Any], dict[str, str] | None], kind: str,
               name: str, cluster: str, node: str, own: Ownership, remove: str) -> Any | None:
    """The container or service `name` (`get` looks it up), or None. Refused when it was not made for this
    cluster's `node` (PreflightError; `remove` is the command that would remove it) or when another state
    directory's instance owns it (ForeignError): never adopted, recreated or removed."""
    from docker.errors import NotFound

    with docker_errors(f"inspect {kind} {name}"):
        try:
            found = get(name)
        except NotFound:
            return None
    labels = labels_of(found) or {}
    if (labels.get(LABEL_CLUSTER), labels.get(LABEL_NODE)) != (cluster, node):
        raise PreflightError(f"a {kind} named {name} exists but was not created by streamctl for cluster "
                             f"{cluster}", hint=f"remove it ({remove} {name}) or rename the cluster in the topology")
    own.check(f"{kind} {name}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR))
    return found


def taken_over_from(own: Ownership, kind: str, name: str, labels: dict[str, str]) -> str:
    """Whose node `up` takes over (legacy or `--adopt`), as an Observation says it: "" when it is ours."""
    found = labels.get(LABEL_INSTANCE)
    if own.check(name, found, labels.get(LABEL_STATE_DIR)):
        return ""
    return f"instance {found}" if found else f"a {kind} without an instance id"


def named_networks(client: Any, name: str) -> list[Any]:
    """The networks called exactly `name` (the engine's name filter also matches names that contain it)."""
    return [net for net in client.networks.list(names=[name]) if net.name == name]


def ensure_network(client: Any, name: str, cluster: str, own: Ownership, **options: Any) -> None:
    """The cluster's network, created with its labels (and the driver `options`) when missing."""
    with docker_errors(f"create network {name}"):
        if not named_networks(client, name):
            client.networks.create(name, labels={LABEL_CLUSTER: cluster, **own.labels()}, **options)


def subnet(client: Any, network: str) -> str:
    """The network's IPv4 subnet: where a Docker HA group's members connect from, whichever leads."""
    with docker_errors(f"inspect network {network}"):
        config = client.networks.get(network).attrs.get("IPAM", {}).get("Config") or []
    subnets = [c["Subnet"] for c in config if "." in c.get("Subnet", "")]
    if not subnets:
        raise BackendError(f"network {network} has no IPv4 subnet", hint="run `streamctl up` to recreate it")
    return str(subnets[0])


def own_networks(client: Any, name: str, cluster: str, own: Ownership) -> list[Any]:
    """The cluster's network(s) of that name this instance may remove (another state directory's stay)."""
    return [net for net in named_networks(client, name)
            if (labels := net.attrs.get("Labels") or {}).get(LABEL_CLUSTER) == cluster
            and own.mine(labels.get(LABEL_INSTANCE))]


def _read_archive(api: Any, container_id: str, path: str) -> str | None:
    from docker.errors import NotFound

    try:
        stream, _ = api.get_archive(container_id, path)
    except NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        fh = tar.extractfile(member) if member else None
        return fh.read().decode(errors="replace") if fh else None


def _marker_text(api: Any, volume: str, image: str | None) -> str | None:
    """The marker's text: read on the host when the volume's directory is reachable, else through a helper
    container that is created, never started (None: no marker, or nothing to read it with)."""
    with suppress(Exception):  # unreachable here: try the helper
        where = host.local_mountpoint(api, volume)
        if where is not None:
            path = where / MARKER
            return path.read_text() if path.exists() else None
    if image is None:
        return None
    host_config = api.create_host_config(binds={volume: {"bind": "/volume", "mode": "ro"}}, network_mode="none")
    try:
        cid = api.create_container(image, command=["true"], entrypoint=["/usr/bin/env"], user="0",
                                   host_config=host_config)["Id"]
    except Exception:  # noqa: BLE001 - no such image here: the label alone says whose it is
        return None
    try:
        return _read_archive(api, cid, f"/volume/{MARKER}")
    finally:
        with suppress(Exception):
            api.remove_container(cid, force=True)


def volume_owner(api: Any, name: str, image: str | None = None) -> Owner | None:
    """Whose the volume is (marker, else label), or None when there is no such volume."""
    from docker.errors import NotFound

    with docker_errors(f"inspect volume {name}"):
        try:
            info = api.inspect_volume(name)
        except NotFound:
            return None
    text = _marker_text(api, name, image)
    if text is not None:
        found, owner_dir = parse_marker(text)
        if found:
            return found, owner_dir
    labels = info.get("Labels") or {}
    return labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR)


def claim_network(client: Any, name: str, cluster: str, own: Ownership, relabel: bool) -> None:
    """Refuse the cluster's network when another instance owns it; relabel=True (before `up` takes nodes
    over): recreate it under our id, disconnecting the containers about to be recreated."""
    with docker_errors(f"inspect network {name}"):
        nets = named_networks(client, name)
    if not nets or (nets[0].attrs.get("Labels") or {}).get(LABEL_CLUSTER) != cluster:
        return
    net = nets[0]
    labels = net.attrs.get("Labels") or {}
    if own.check(f"network {name}", labels.get(LABEL_INSTANCE), labels.get(LABEL_STATE_DIR)) or not relabel:
        return
    with docker_errors(f"relabel network {name}"):
        attached = client.api.inspect_network(net.id).get("Containers") or {}
        for cid in attached:
            client.api.disconnect_container_from_network(cid, net.id, force=True)
        net.remove()
        client.networks.create(name, driver="bridge", labels={LABEL_CLUSTER: cluster, **own.labels()})

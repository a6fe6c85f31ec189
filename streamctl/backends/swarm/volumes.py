"""Removing a node's volume on whichever Swarm host holds it, and remembering the ones that could not go.

The manager's engine reaches only its own volumes. For another host, a one-shot service pinned there
(the node's own image, so nothing new is pulled) asks that host's engine, over its socket, to delete the
volume: nothing beyond what a Swarm node has. A volume that could not be removed (host down, engine
refusing) is recorded in the state (`swarm_leftover_volumes`), shown by `status`, retried by the next
`up` or `down --volumes`, and a new node is never started on it.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm import spec as sspec
from streamctl.backends.swarm.hosts import STATE_LOCK
from streamctl.backends.swarm.placement import Pin
from streamctl.context import ClusterContext
from streamctl.readiness import Readiness

LEFTOVERS = "swarm_leftover_volumes"

# DELETE /volumes/NAME on the host's engine socket, retried (once a second, `tries` times) while a task
# still holds it: a removed service's container may take its whole stop grace period to go. A container that
# holds it after its task ended (the task history Swarm keeps, e.g. on a host drained earlier) is removed
# when it is stopped and is this cluster's (the node's service, or the cluster's label), never a running
# one or another cluster's. On failure it says what holds the volume.
# Perl is in the base of the Debian images the nodes run (PostgreSQL, Citus, Redis); 204 or 404: gone.
_SCRIPT = r"""
use IO::Socket::UNIX;
my ($name, $service, $cluster, $tries) = @ARGV;
sub call {
  my ($method, $path) = @_;
  my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "/var/run/docker.sock") or die "socket: $!";
  print $s "$method $path HTTP/1.0\r\nHost: docker\r\n\r\n";
  my $reply = join("", <$s>);
  my ($code) = $reply =~ m{^HTTP/\S+ (\d+)};
  my ($body) = $reply =~ m{\r\n\r\n(.*)}s;
  return ($code, $body);
}
sub holders {
  my ($extra) = @_;
  my $f = '{"volume":["' . $name . '"]' . $extra . '}';
  $f =~ s/([^A-Za-z0-9_.~-])/sprintf("%%%02X", ord($1))/ge;
  my ($code, $body) = call("GET", "/containers/json?all=1&filters=$f");
  return $code == 200 ? $body : "";
}
my $stopped = ',"status":["exited","created","dead"]';
for my $try (1 .. $tries) {
  my ($code, $body) = call("DELETE", "/volumes/$name");
  exit 0 if $code == 204 || $code == 404;
  if ($code != 409 || $try == $tries) {
    my @held = holders("") =~ m{"Names":\["/([^"]+)"\].*?"State":"(\w+)"}g;
    my @named = map { $held[2 * $_] . " (" . $held[2 * $_ + 1] . ")" } 0 .. $#held / 2;
    print STDERR "HTTP $code: $body" . (@named ? " held by: " . join(", ", @named) : "") . "\n";
    exit 1;
  }
  my %ids;
  $ids{$_} = 1 for (holders(',"label":["com.docker.swarm.service.name=' . $service . '"]' . $stopped)
                    =~ m{"Id":"([0-9a-f]{64})"}g);
  $ids{$_} = 1 for (holders(',"label":["io.streamctl.cluster=' . $cluster . '"]' . $stopped)
                    =~ m{"Id":"([0-9a-f]{64})"}g);
  call("DELETE", "/containers/$_") for keys %ids;
  sleep 1;
}
"""


def _last_words(service: Any) -> str:
    """The first line of what the one-shot task wrote (the engine's reply when it refused), if readable."""
    with suppress(Exception):
        text = b"".join(service.logs(stdout=True, stderr=True)).decode(errors="replace").strip()
        if text:
            return "(" + text.splitlines()[0][:400] + ")"
    return ""


@dataclass(frozen=True)
class Leftover:
    volume: str
    node: str
    host: Pin
    image: str

    def describe(self) -> str:
        return f"volume {self.volume} of {self.node} on {self.host.describe()}"


class SwarmVolumes:
    def __init__(self, client: Any, ctx: ClusterContext, local_id: str) -> None:
        self.client = client
        self.ctx = ctx
        self.local_id = local_id

    # -- the record -------------------------------------------------------------------------------
    def leftovers(self) -> list[Leftover]:
        raw = self.ctx.store.read().get(LEFTOVERS, {}) if self.ctx.store.exists() else {}
        return [Leftover(name, v["node"], Pin(**v["host"]), v["image"]) for name, v in sorted(raw.items())]

    def _record(self, left: Leftover, keep: bool) -> None:
        with STATE_LOCK:
            data = dict(self.ctx.store.read().get(LEFTOVERS, {}))
            if keep:
                data[left.volume] = {"node": left.node, "image": left.image, "host": {
                    "id": left.host.id, "hostname": left.host.hostname, "addr": left.host.addr}}
            else:
                data.pop(left.volume, None)
            self.ctx.store.update(**{LEFTOVERS: data})

    def of_node(self, node: str) -> list[Leftover]:
        return [left for left in self.leftovers() if left.node == node]

    # -- removal ----------------------------------------------------------------------------------
    def remove(self, left: Leftover, timeout: float = 150.0) -> str | None:
        """Remove one volume where it lives; None when it is gone, else why not (and it stays recorded)."""
        self._record(left, keep=True)  # recorded first: an interrupted removal is retried later
        try:
            if left.host.id == self.local_id:
                self._remove_here(left.volume)
            else:
                self._remove_there(left, timeout)
        except Exception as exc:  # noqa: BLE001 - a volume that cannot go now is reported and kept
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self._record(left, keep=False)
        return None

    def remove_later(self, left: Leftover) -> None:
        """Its host cannot run anything now: recorded, to be removed at the next chance."""
        self._record(left, keep=True)

    def _remove_here(self, name: str) -> None:
        from docker.errors import NotFound

        def gone() -> bool:
            try:
                self.client.volumes.get(name).remove(force=True)
            except NotFound:
                return True
            except Exception as exc:  # noqa: BLE001 - "in use" while the task's container goes away
                if "in use" in str(exc):
                    return False
                raise
            return True

        with docker_errors(f"remove volume {name}"):
            Readiness(f"volume {name} to be released", gone, sspec.STOP_GRACE + 30, interval=0.5).wait()

    def _remove_there(self, left: Leftover, timeout: float) -> None:
        from docker.types import Mount, RestartPolicy, ServiceMode

        cluster = self.ctx.topology.cluster
        name = f"{cluster[:30]}-rmvol-{uuid.uuid4().hex[:8]}"
        with docker_errors(f"start a one-shot task on {left.host.hostname} to remove {left.volume}"):
            service = self.client.services.create(
                image=left.image, name=name, user="root",
                command=["perl", "-e", _SCRIPT, left.volume, docker_spec.container_name(cluster, left.node),
                         cluster, str(sspec.STOP_GRACE + 30)],
                labels={docker_spec.LABEL_CLUSTER: cluster},
                mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
                constraints=[f"node.id == {left.host.id}"], mode=ServiceMode("replicated", replicas=1),
                restart_policy=RestartPolicy(condition="none"))
        try:
            state: dict[str, Any] = {"task": None}

            def finished() -> bool:
                tasks = service.tasks()
                state["task"] = tasks[0] if tasks else None
                return bool(tasks) and tasks[0]["Status"]["State"] in ("complete", "failed", "rejected")

            Readiness(f"the one-shot removal of {left.volume} on {left.host.hostname}", finished, timeout,
                      interval=0.5).wait()
            status = state["task"]["Status"]
            if status["State"] != "complete":
                raise RuntimeError(f"the removal task {status['State']}: {status.get('Err') or ''} "
                                   f"{_last_words(service)}".strip())
        finally:
            with suppress(Exception):
                service.remove()

"""Putting an image the manager holds (the HA member image it built) on other Swarm hosts, with no registry
and through the manager only.

A feeder service pinned to the manager (the image itself, so nothing is pulled; the manager's engine socket
mounted) listens on the cluster's overlay network and answers each connection with the image's archive
(`GET /images/get` on that socket). On each target host a one-shot service pinned there (an image the host
already holds: the node's base image; its engine socket mounted) first asks its engine whether it holds the
tag as the same image id, and stops there if so (cached by content); else it streams the feeder's archive into
its engine's `POST /images/load` and checks afterwards that the tag names that id (a load verifies the
layers against the image's configuration, so the id vouches for the content). The overlay network is not
attachable: only this cluster's services reach the feeder, and it serves nothing but that one image. Both
services are removed at the end, whatever happened. Perl is in the base of the Debian images the nodes run."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from streamctl.backends.docker import spec as docker_spec
from streamctl.backends.docker.errors import docker_errors
from streamctl.backends.swarm.placement import Pin
from streamctl.errors import BackendError, StreamctlError
from streamctl.readiness import Readiness

FEED_PORT = 7431  # on the overlay network only: never published

_FEEDER = r"""
use IO::Socket::INET; use IO::Socket::UNIX;
my ($tag, $port) = @ARGV;
$SIG{CHLD} = 'IGNORE';
my $l = IO::Socket::INET->new(LocalPort => $port, Listen => 16, ReuseAddr => 1, Proto => 'tcp')
  or die "listen: $!\n";
print "listening\n";
while (1) {
  my $c = $l->accept or next;
  if (fork) { close $c; next }
  binmode $c;
  my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "/var/run/docker.sock") or die "socket: $!\n";
  (my $q = $tag) =~ s/([^A-Za-z0-9_.~-])/sprintf("%%%02X", ord($1))/ge;
  print $s "GET /images/get?names=$q HTTP/1.0\r\nHost: docker\r\n\r\n";
  my $head = '';
  while (index($head, "\r\n\r\n") < 0) { sysread($s, my $b, 1) or exit 1; $head .= $b }
  exit 1 unless $head =~ m{^HTTP/\S+ 200};
  while (my $n = sysread($s, my $buf, 65536)) {
    my $off = 0;
    while ($off < $n) { my $w = syswrite($c, $buf, $n - $off, $off); exit 1 unless defined $w; $off += $w }
  }
  exit 0;
}
"""

_LOADER = r"""
use IO::Socket::INET; use IO::Socket::UNIX;
my ($tag, $id, $feeder, $port) = @ARGV;
$| = 1;
sub engine { IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => "/var/run/docker.sock") or die "socket: $!\n" }
sub held {
  my $s = engine();
  print $s "GET /images/$tag/json HTTP/1.0\r\nHost: docker\r\n\r\n";
  my $r = join('', <$s>);
  return $r =~ m{^HTTP/\S+ 200} && $r =~ m{"Id":"\Q$id\E"};
}
if (held()) { print "present\n"; exit 0 }
my $src;
for (1 .. 120) { $src = IO::Socket::INET->new(PeerAddr => $feeder, PeerPort => $port, Timeout => 5) and last; sleep 1 }
$src or die "cannot reach the feeder $feeder:$port: $@\n";
binmode $src;
my $e = engine();
print $e "POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
  . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
my $total = 0;
while (my $n = sysread($src, my $buf, 65536)) { print $e sprintf("%x\r\n", $n), $buf, "\r\n"; $total += $n }
print $e "0\r\n\r\n";
my $r = join('', <$e>);
die "the engine refused the archive ($total bytes): " . substr($r, 0, 400) . "\n"
  unless $r =~ m{^HTTP/\S+ 200} && $r !~ m{"error};
held() or die "after the load ($total bytes), $tag is not image $id\n";
print "loaded $total bytes\n";
"""


def _task_state(service: Any) -> tuple[str, str]:
    tasks = service.tasks()
    if not tasks:
        return "new", ""
    status = tasks[0]["Status"]
    return str(status["State"]), str(status.get("Err") or "")


def _output(service: Any) -> str:
    with suppress(Exception):
        return b"".join(service.logs(stdout=True, stderr=True)).decode(errors="replace").strip()
    return ""


class ImageSpread:
    """Spreads one image from the manager to the hosts that lack it (see the module's docstring)."""

    def __init__(self, client: Any, cluster: str, network: str, local: Pin) -> None:
        self.client, self.cluster, self.network, self.local = client, cluster, network, local

    def _service(self, kind: str, image: str, script: str, args: list[str], pin: Pin) -> Any:
        from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

        name = f"{self.cluster[:30]}-{kind}-{uuid.uuid4().hex[:8]}"
        with docker_errors(f"start the image {kind} task {name} on {pin.hostname}"):
            return self.client.services.create(
                image=image, name=name, user="root", command=["perl", "-e", script, *args],
                labels={docker_spec.LABEL_CLUSTER: self.cluster}, networks=[self.network],
                mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")],
                constraints=[f"node.id == {pin.id}"], mode=ServiceMode("replicated", replicas=1),
                endpoint_spec=EndpointSpec(mode="dnsrr"), restart_policy=RestartPolicy(condition="none"))

    def spread(self, tag: str, runners: dict[str, str], targets: list[Pin], timeout: float = 600.0) -> dict[str, str]:
        """Put `tag` (held by the manager) on every target host; `runners`: host id -> an image that host
        holds, to run its one-shot task. Returns hostname -> "present" (skipped) or "loaded N bytes (S s)".
        Raises BackendError naming every host that could not get it."""
        targets = [p for p in targets if p.id != self.local.id]
        if not targets:
            return {}
        with docker_errors(f"inspect image {tag}"):
            image_id = str(self.client.api.inspect_image(tag)["Id"])
        feeder = self._service("imgfeed", tag, _FEEDER, [tag, str(FEED_PORT)], self.local)
        try:
            self._await(feeder, self.local, "running", 120.0)
            with ThreadPoolExecutor(len(targets)) as pool:
                results = list(pool.map(lambda p: self._load(p, tag, image_id, feeder.name, runners[p.id], timeout),
                                        targets))
        finally:
            with suppress(Exception):
                feeder.remove()
        failed = [f"{p.hostname}: {why}" for p, (ok, why) in zip(targets, results, strict=True) if not ok]
        if failed:
            raise BackendError(f"could not put image {tag} on {len(failed)} of {len(targets)} Swarm hosts",
                               details=failed, hint="check that each host holds the node's base image and that "
                                                    "the overlay network works between the hosts")
        return {p.hostname: why for p, (_, why) in zip(targets, results, strict=True)}

    def _load(self, pin: Pin, tag: str, image_id: str, feeder: str, runner: str, timeout: float) -> tuple[bool, str]:
        start = time.monotonic()
        try:
            task = self._service("imgload", runner, _LOADER, [tag, image_id, feeder, str(FEED_PORT)], pin)
            try:
                state, err = self._await(task, pin, "complete", timeout)
                out = _output(task)
            finally:
                with suppress(Exception):
                    task.remove()
        except StreamctlError as exc:
            return False, exc.message
        if state != "complete":
            return False, f"the load task {state}{': ' + err if err else ''} {out}".strip()
        last = out.splitlines()[-1] if out else "done"
        return True, last if last == "present" else f"{last} ({time.monotonic() - start:.1f} s)"

    @staticmethod
    def _await(service: Any, pin: Pin, want: str, timeout: float) -> tuple[str, str]:
        """Until the one task reaches `want` or ends otherwise; a task that never starts fails with why."""
        seen: dict[str, str] = {}
        ends = {"complete", "failed", "rejected", "shutdown", "orphaned"}

        def reached() -> bool:
            seen["state"], seen["err"] = _task_state(service)
            return seen["state"] == want or seen["state"] in ends

        Readiness(f"task {service.name} on {pin.hostname} to be {want}", reached, timeout, interval=0.5).wait()
        if want == "running" and seen["state"] != "running":
            raise BackendError(f"task {service.name} on {pin.hostname} {seen['state']}: {seen['err']} "
                               f"{_output(service)}".strip())
        return seen["state"], seen["err"]

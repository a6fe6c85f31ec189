"""A PostgreSQL socket here that leads to a server on a Swarm network this process is not on: each client
connection to a Unix socket in a local directory becomes a `docker exec` in a container on that network
(a task on the manager, the only engine streamctl talks to), running a small relay to host:port with the
image's Perl; bytes go both ways over the exec's attached stream. Restored nodes use it while they run
isolated on an internal network of their own (backup/swarm_site.py)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from pathlib import Path
from typing import Any

# stdin -> the server, the server -> stdout, until either side closes (IO modules of perl-base only)
_PERL = (
    "use IO::Socket::INET; use IO::Select; binmode STDIN; binmode STDOUT;"
    "my $s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 5)"
    " or die qq(relay: cannot reach $ARGV[0]:$ARGV[1]: $@\\n);"
    "my $sel = IO::Select->new(\\*STDIN, $s);"
    "while (1) { for my $h ($sel->can_read) { my $n = sysread($h, my $buf, 65536); exit 0 unless $n;"
    " my $out = fileno($h) == fileno($s) ? \\*STDOUT : $s; my $off = 0;"
    " while ($off < $n) { my $w = syswrite($out, $buf, $n - $off, $off); exit 1 unless defined $w;"
    " $off += $w } } }"
)


class Relay:
    """Listens on `<directory>/.s.PGSQL.<port>` (libpq's name for a server's socket) until closed."""

    def __init__(self, api: Any, container: str, target: tuple[str, int], directory: Path, port: int,
                 user: str = "postgres") -> None:
        self.api, self.container, self.target, self.user = api, container, target, user
        self.path = directory / f".s.PGSQL.{port}"
        self.path.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.path.chmod(0o600)  # this process's user only
        self.listener.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, name=f"relay {target[0]}", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _open(self) -> socket.socket:
        host, port = self.target
        ex = self.api.exec_create(self.container, ["perl", "-e", _PERL, host, str(port)], stdin=True,
                                  stdout=True, stderr=True, user=self.user)
        stream = self.api.exec_start(ex["Id"], socket=True)
        raw: socket.socket = getattr(stream, "_sock", stream)
        return raw

    def _serve(self, client: socket.socket) -> None:
        try:
            remote = self._open()
        except Exception:  # noqa: BLE001 - the client sees its connection closed, and says so
            client.close()
            return
        threading.Thread(target=self._upstream, args=(client, remote), daemon=True).start()
        try:
            self._downstream(remote, client)
        finally:
            for s in (client, remote):
                with contextlib.suppress(OSError):
                    s.close()

    @staticmethod
    def _upstream(client: socket.socket, remote: socket.socket) -> None:
        """The client's bytes are the exec's stdin; its end closes stdin, which ends the relay."""
        try:
            while data := client.recv(65536):
                remote.sendall(data)
            remote.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    @staticmethod
    def _downstream(remote: socket.socket, client: socket.socket) -> None:
        """The exec's output is framed (8-byte headers: stream, size); stdout goes to the client."""
        buf = b""
        while True:
            try:
                data = remote.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 8:
                kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                if len(buf) < 8 + size:
                    break
                payload, buf = buf[8:8 + size], buf[8 + size:]
                if kind == 1:
                    try:
                        client.sendall(payload)
                    except OSError:
                        return

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        self.path.unlink(missing_ok=True)

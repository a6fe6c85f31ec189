"""verify's plain-text probe carries no password: a listener speaking just enough of the PostgreSQL protocol
asks for a cleartext password (AuthenticationCleartextPassword: 'R', code 3) and records what comes back."""

from __future__ import annotations

import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from queue import Queue

import psycopg
import pytest

from streamctl.verify.tls import plain_text_probe

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


class CleartextAsker:
    """Accepts connections on 127.0.0.1; answers each startup with a cleartext password request and keeps
    every byte the client sends after it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.after_auth_request: Queue[bytes] = Queue()  # one entry per connection, once it is done
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                while True:  # SSL / GSS requests are declined ('N'), then comes the startup message
                    head = self._read(conn, 8)
                    if len(head) < 8:
                        break
                    length, code = struct.unpack("!ii", head)
                    self._read(conn, length - 8)
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        conn.sendall(b"N")
                        continue
                    conn.sendall(b"R" + struct.pack("!ii", 8, 3))
                    received = b""
                    try:
                        while chunk := conn.recv(4096):
                            received += chunk
                            if received.startswith(b"p"):  # a password message: answer so the client stops
                                conn.sendall(b"E" + struct.pack("!i", 4 + 1) + b"\0")
                                break
                    except OSError:
                        pass
                    self.after_auth_request.put(received)
                    break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def asker() -> Iterator[CleartextAsker]:
    server = CleartextAsker()
    try:
        yield server
    finally:
        server.close()


def test_the_listener_sees_a_password_a_client_sends(asker: CleartextAsker) -> None:
    """The listener is not blind: a client that has a password sends it in clear when asked."""
    secret = secrets.token_urlsafe(16)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=asker.port, user="postgres", password=secret,
                        sslmode="disable", gssencmode="disable", connect_timeout=5)
    received = asker.after_auth_request.get(timeout=30)
    assert received.startswith(b"p") and secret.encode() in received


def test_the_probe_sends_no_password_even_with_one_in_the_environment(
        asker: CleartextAsker, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_urlsafe(16)
    monkeypatch.setenv("PGPASSWORD", secret)  # what libpq would pick up by itself
    outcome = plain_text_probe("127.0.0.1", asker.port, "postgres")
    assert outcome is not None and "up to password authentication" in outcome
    received = asker.after_auth_request.get(timeout=30)  # the probe reached the password request
    assert not received.startswith(b"p"), received
    assert secret.encode() not in received

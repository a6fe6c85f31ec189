"""A pipelined Redis GET for the gateway's hot path: one connection, requests written back to back,
replies matched in order by a single reader task.

redis-py's asyncio client checks a connection out of a pool per command, which costs more CPU than the
rest of a cached request; Redis answers commands on one connection in order, so many concurrent GETs
can share one socket. Only GET is needed here: everything else keeps using redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque


class CacheReader:
    """GET-only Redis client multiplexing concurrent requests over one authenticated connection."""

    def __init__(self, host: str, port: int, password: str | None, timeout: float = 2.0,
                 ca: str | None = None) -> None:
        self.host, self.port, self.password, self.timeout = host, port, password, timeout
        # With a CA file: TLS, verifying the server's certificate and host name against it.
        self.ssl: ssl.SSLContext | None = ssl.create_default_context(cafile=ca) if ca else None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[asyncio.Future[bytes | None]] = deque()
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None
        self._out = bytearray()  # commands of this loop iteration, written together (one TLS record)
        self._flush_soon = False

    async def get(self, key: str) -> bytes | None:
        if self._writer is None:
            await self._connect()
        raw = key.encode()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._pending.append(future)
        self._out += b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(raw), raw)
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)
        async with asyncio.timeout(self.timeout):
            return await future

    def _flush(self) -> None:
        self._flush_soon = False
        if self._out and self._writer is not None:
            self._writer.write(bytes(self._out))
        self._out.clear()

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return self._writer
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl), self.timeout)
            if self.password:
                pw = self.password.encode()
                writer.write(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                reply = await asyncio.wait_for(reader.readline(), self.timeout)
                if not reply.startswith(b"+OK"):
                    writer.close()
                    raise ConnectionError("Redis refused the cache connection's password")
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_replies(reader))
            return writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readline()
                if not head:
                    raise ConnectionError("Redis closed the cache connection")
                value: bytes | None | Exception
                if head.startswith(b"$"):
                    size = int(head[1:-2])
                    value = None if size < 0 else (await reader.readexactly(size + 2))[:-2]
                elif head.startswith(b"-"):
                    value = ConnectionError(head[1:-2].decode(errors="replace"))
                else:
                    value = ConnectionError(f"unexpected Redis reply {head[:20]!r}")
                future = self._pending.popleft()
                if not future.done():  # it may have timed out meanwhile
                    if isinstance(value, Exception):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            self._fail_all(exc)

    def _fail_all(self, exc: BaseException) -> None:
        """Drop the connection; every waiting GET fails (the caller falls back), the next one reconnects."""
        writer, self._writer = self._writer, None
        self._out.clear()  # commands for the lost connection: their futures fail below
        if writer is not None:
            writer.close()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"cache connection lost: {exc}"))

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self._fail_all(ConnectionError("closed"))

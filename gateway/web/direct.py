"""Direct socket writes for SSE fan-out: the publishing task writes each client's frames
straight to its socket, instead of waking one task per client to write through Quart,
Hypercorn and h11 (about 180 us of CPU per write on this stack; a bare non-blocking
`send()` costs a few microseconds).

How it stays correct:
- Hypercorn's connection object (and its send lock) is captured per connection in a
  context variable by a small wrapper around `TCPServer.run`; the ASGI app task inherits it.
- The response headers and the first frames go through Hypercorn as usual. Only once a
  stream is live does the client switch to direct mode, and only when its queue is empty.
- A direct write happens only when Hypercorn is not writing on that connection (its send
  lock is free) and nothing is pending; the bytes are framed as HTTP/1.1 chunks, which is
  what h11 would write (h11 does not count chunked bytes, so it still ends the body).
- Whatever cannot be written at once (socket buffer full, lock held) is kept in order: the
  unwritten tail of a started chunk is finished raw by the stream's task, frames after it
  wait in a backlog that the task yields through Hypercorn. New frames append behind it.
- A backlog past `max_backlog` bytes makes the client a slow consumer (the hub cuts it).
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..core.frames import Frame

logger = logging.getLogger(__name__)

CURRENT_CONNECTION: contextvars.ContextVar[Any] = contextvars.ContextVar("gateway_tcp_connection", default=None)
_installed = False


def install() -> bool:
    """Wrap Hypercorn's trio TCPServer.run to expose the connection (idempotent)."""
    global _installed
    if _installed:
        return True
    try:
        from hypercorn.trio.tcp_server import TCPServer
    except ImportError:  # pragma: no cover - another Hypercorn layout: stay on the normal path
        logger.warning("direct SSE writes disabled: hypercorn.trio.tcp_server not found")
        return False
    original = TCPServer.run

    async def run(self: Any) -> None:
        CURRENT_CONNECTION.set(self)
        await original(self)

    TCPServer.run = run  # type: ignore[method-assign]
    _installed = True
    return True


def plain_socket_fd(conn: Any) -> int | None:
    """The file descriptor behind a plain (non-TLS) Hypercorn connection, else None."""
    sock = getattr(getattr(conn, "stream", None), "socket", None)
    if sock is None or not hasattr(conn, "send_lock"):
        return None
    fd = sock.fileno()
    return fd if fd >= 0 else None


def nothing() -> None:
    pass


class DirectWriter:
    """Writes one SSE client's frames from the publishing task; see the module docstring."""

    __slots__ = ("active", "after", "backlog", "backlog_bytes", "chunked", "conn", "dead", "max_backlog", "named",
                 "raw",
                 "wakeup", "writes")

    def __init__(self, conn: Any, *, named: bool, max_backlog: int, chunked: bool) -> None:
        self.conn = conn
        self.chunked = chunked  # HTTP/1.1 bodies are chunked; HTTP/1.0 ones are raw until close
        self.named = named
        self.max_backlog = max_backlog
        self.active = False  # True: frames are written at once; False: they queue in the backlog
        self.backlog: list[bytes] = []
        self.backlog_bytes = 0
        self.raw = b""  # the unwritten tail of a chunk already started on the wire
        self.dead = False
        self.wakeup: Callable[[], None] = nothing  # set by the waiting stream task
        self.writes = 0
        # ids up to here were replayed from the store: the same frames may still be published
        # (commit and publish are not atomic for a reader), and must not go out twice
        self.after = 0

    def deliver(self, frames: Sequence[Frame]) -> bool:
        """Called by the hub (synchronously). False: the client is too far behind."""
        named, after = self.named, self.after
        if after:
            frames = [f for f in frames if f.seq is None or f.seq > after]
            if not frames:
                return True
        data = b"".join([f.sse(named) for f in frames])
        if self.active and not self.conn.send_lock.locked():
            self._write(data)
        else:
            self._queue(data)
        return self.backlog_bytes <= self.max_backlog

    def try_write(self, data: bytes) -> bool:
        """Write now if direct writes are possible (e.g. a heartbeat); False: send it another way."""
        if not self.active or self.conn.send_lock.locked():
            return False
        self._write(data)
        return True

    def _queue(self, data: bytes) -> None:
        self.backlog.append(data)
        self.backlog_bytes += len(data)
        self.active = False
        self.wakeup()

    def _write(self, data: bytes) -> None:
        chunk = self._frame(data)
        fd = self.conn.stream.socket.fileno()
        if fd < 0:
            self._die()
            return
        try:
            n = os.write(fd, chunk)
        except BlockingIOError:
            n = 0
        except OSError:
            self._die()
            return
        self.writes += 1
        if n < len(chunk):
            self.raw = chunk[n:]
            self.active = False
            self.wakeup()

    def _die(self) -> None:
        self.dead = True
        self.active = False
        self.wakeup()

    def take_backlog(self) -> bytes:
        data = b"".join(self.backlog)
        self.backlog.clear()
        self.backlog_bytes = 0
        return data

    async def finish_raw(self) -> None:
        """Write the tail of a started chunk, holding Hypercorn's send lock meanwhile."""
        async with self.conn.send_lock:
            sock = self.conn.stream.socket
            while self.raw:
                fd = sock.fileno()
                if fd < 0:
                    self._die()
                    return
                await trio.lowlevel.wait_writable(fd)
                try:
                    n = os.write(fd, self.raw)
                except BlockingIOError:
                    continue
                except OSError:
                    self._die()
                    return
                self.raw = self.raw[n:]

    def _frame(self, data: bytes) -> bytes:
        return b"%X\r\n%b\r\n" % (len(data), data) if self.chunked else data

    async def flush(self) -> None:
        """Write the raw tail, then the backlog, ourselves (cancellable, unlike Hypercorn's
        shielded send: a client that stopped reading must not pin this task)."""
        while (self.raw or self.backlog) and not self.dead:
            if not self.raw:
                self.raw = self._frame(self.take_backlog())
            await self.finish_raw()

    def abort(self) -> None:
        """Give up on the client: close its socket (Hypercorn's pending I/O on it ends too)."""
        self.backlog.clear()
        self.backlog_bytes = 0
        self.raw = b""
        self.conn.stream.socket.close()
        self._die()

    async def close_with(self, final: bytes, grace_s: float) -> None:
        """End the stream: flush what is owed within `grace_s`, then the final frame; a client
        that cannot take that is disconnected (it resumes from the store by id)."""
        with trio.move_on_after(grace_s):
            await self.flush()
        if self.dead:
            return
        if self.raw or self.backlog or self.conn.send_lock.locked():
            self.abort()
            return
        self.active = True
        self._write(final)
        if self.raw:
            self.abort()

    def resume_direct(self) -> bool:
        """Go back to direct writes if nothing is pending (no await: atomic in Trio)."""
        if not self.raw and not self.backlog and not self.dead:
            self.active = True
        return self.active

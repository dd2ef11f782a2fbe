"""Direct socket writes for stream fan-out: the publishing task writes each client's frames
straight to its socket, instead of waking one task per client to write through Quart,
Hypercorn and h11/wsproto (about 180 us of CPU per write on this stack; a bare
non-blocking `send()` costs a few microseconds).

How it stays correct:
- Hypercorn's connection object (and its send lock) is captured per connection in a
  context variable by the patched `TCPServer.run` (hypercorn_patches.py); the ASGI app
  task inherits it.
- SSE: the response headers and the first frames go through Hypercorn as usual; once a
  stream is live (and its queue empty) it switches to direct mode. Bytes are framed as
  HTTP/1.1 chunks, which is what h11 would write (h11 does not count chunked bytes, so it
  still ends the body).
- WebSocket: after the handshake every message of ours is written here (one unmasked text
  frame each, RSV1 unset: valid with permessage-deflate too); Hypercorn keeps pings, pong
  replies and the close. Writes stop once a close frame has gone either way.
- A direct write happens only when Hypercorn is not writing on that connection (its send
  lock is free) and nothing is pending. Whatever cannot be written at once (socket buffer
  full, lock held) is kept in order: the unwritten tail of a started frame is finished by
  the stream's task (or first thing by Hypercorn's next write, under its lock), frames
  after it wait in a backlog that the stream's task flushes with cancellable writes.
- A backlog past `max_backlog` bytes makes the client a slow consumer (the hub cuts it); it
  gets a short grace for what it is owed and the final frame, then its socket is closed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..core.frames import Frame, http_chunk
from ..hub import Subscriber
from ..streaming import StreamSession, final_frame, heartbeat
from .hypercorn_patches import CURRENT_CONNECTION  # set per connection by the patched TCPServer.run

logger = logging.getLogger(__name__)

__all__ = ["CURRENT_CONNECTION", "DirectWriter"]


def plain_socket_fd(conn: Any) -> int | None:
    """The file descriptor behind a plain (non-TLS) Hypercorn connection, else None."""
    sock = getattr(getattr(conn, "stream", None), "socket", None)
    if sock is None or not hasattr(conn, "send_lock"):
        return None
    fd = sock.fileno()
    return fd if fd >= 0 else None


def nothing() -> None:
    pass


def ws_protocol(conn: Any) -> Any:
    """wsproto's Connection of a WebSocket on a Hypercorn HTTP/1.1 connection, else None."""
    stream = getattr(getattr(getattr(conn, "protocol", None), "protocol", None), "stream", None)
    return getattr(stream, "connection", None)


Encoder = Callable[[Sequence[Frame]], bytes]


def _sse_encoder(named: bool, chunked: bool) -> Encoder:
    if not chunked:  # HTTP/1.0: the body is raw until the connection closes
        return lambda frames: b"".join([f.sse(named) for f in frames])

    def encode(frames: Sequence[Frame]) -> bytes:
        if len(frames) == 1:
            return frames[0].sse_chunk(named)
        return http_chunk(b"".join([f.sse(named) for f in frames]))

    return encode


# one object per wire format: the hub shares a batch's bytes between writers by encoder
_SSE_ENCODERS = {(named, chunked): _sse_encoder(named, chunked) for named in (False, True) for chunked in (False, True)}


def sse_encoder(named: bool, *, chunked: bool) -> Encoder:
    """SSE events; on HTTP/1.1 one chunk per write, as h11 would frame it (h11 does not count
    chunked bytes, so it still ends the body). A single frame's chunk is encoded once."""
    return _SSE_ENCODERS[(named, chunked)]


def ws_encode(frames: Sequence[Frame]) -> bytes:
    return b"".join([f.ws() for f in frames])


class DirectWriter:
    """Writes one client's frames from the publishing task; see the module docstring.

    `encode` turns frames into complete wire units (SSE events in an HTTP/1.1 chunk, or one
    WebSocket text frame each), so any concatenation of its outputs is valid on the wire;
    `is_open` says whether the protocol still allows data (a WebSocket stops once a close
    frame has gone either way)."""

    __slots__ = ("_conn", "active", "after", "backlog", "backlog_bytes", "dead", "encode", "is_open", "lock",
                 "max_backlog", "raw", "sock", "stall_s", "wakeup", "writes")

    def __init__(self, conn: Any, *, encode: Encoder, max_backlog: int, stall_s: float = 30.0,
                 is_open: Callable[[], bool] | None = None) -> None:
        self.conn = conn
        self.stall_s = stall_s  # a socket that takes no byte for this long is closed
        self.encode = encode
        self.is_open = is_open
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
        conn.gw_direct = self  # Hypercorn's own writes on this socket finish our tail first

    @property
    def conn(self) -> Any:
        return self._conn

    @conn.setter
    def conn(self, conn: Any) -> None:
        """Hypercorn's connection, or ours once detached; its lock and socket are kept at hand
        (read once per subscriber per publish)."""
        self._conn = conn
        self.lock, self.sock = conn.send_lock, conn.stream.socket

    def deliver(self, frames: Sequence[Frame], encoded: dict[Any, bytes] | None = None) -> bool:
        """Called by the hub (synchronously) with a publish's frames for this client and the
        bytes already encoded for its group. False: the client is too far behind."""
        after = self.after
        if after:
            last = frames[-1].seq
            if last is not None and last > after:
                self.after = 0  # ids only grow: nothing published from now on was replayed
            frames = [f for f in frames if f.seq is None or f.seq > after]
            if not frames:
                return True
            data = self.encode(frames)
        elif encoded is None:
            data = self.encode(frames)
        else:
            shared = encoded.get(self.encode)
            if shared is None:
                shared = encoded[self.encode] = self.encode(frames)
            data = shared
        if self.active and not self.lock.locked():  # push(), inlined: once per subscriber per publish
            self._write(data)
        else:
            self._queue(data)
        return self.backlog_bytes <= self.max_backlog

    def push(self, data: bytes) -> None:
        """Write now if nothing is pending and Hypercorn is not writing, else queue in order."""
        if self.active and not self.lock.locked():
            self._write(data)
        else:
            self._queue(data)

    async def send(self, data: bytes) -> None:
        """Send through the same ordered path, waiting while the client is behind (used for
        what is not fan-out: a WebSocket's first frames, replays, replies)."""
        self.push(data)
        await self.flush()
        self.resume_direct()

    def try_write(self, data: bytes) -> bool:
        """Write now if direct writes are possible (e.g. a heartbeat); False: send it another way."""
        if not self.active or self.lock.locked():
            return False
        self._write(data)
        return True

    def _queue(self, data: bytes) -> None:
        self.backlog.append(data)
        self.backlog_bytes += len(data)
        self.active = False
        self.wakeup()

    def _write(self, chunk: bytes) -> None:
        fd = self.sock.fileno()
        if fd < 0 or (self.is_open is not None and not self.is_open()):
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
            await self.finish_raw_locked()

    async def finish_raw_locked(self) -> None:
        sock = self.conn.stream.socket
        while self.raw:
            fd = sock.fileno()
            if fd < 0:
                self._die()
                return
            with trio.move_on_after(self.stall_s) as waiting:
                await trio.lowlevel.wait_writable(fd)
            if waiting.cancelled_caught:  # whoever waits here (us, a Hypercorn ping) must not wait forever
                logger.info("closing a stream whose client took nothing for %.0f s", self.stall_s)
                self.abort()
                return
            try:
                n = os.write(fd, self.raw)
            except BlockingIOError:
                continue
            except OSError:
                self._die()
                return
            self.raw = self.raw[n:]

    async def flush(self) -> None:
        """Write the raw tail, then the backlog, ourselves (cancellable, unlike Hypercorn's
        shielded send: a client that stopped reading must not pin this task)."""
        while (self.raw or self.backlog) and not self.dead:
            if not self.raw:
                if self.is_open is not None and not self.is_open():
                    self._die()
                    return
                self.raw = self.take_backlog()
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


async def send_unless_cut(writer: DirectWriter, sub: Subscriber | None, data: bytes) -> bool:
    """`writer.send(data)` before a stream is live (first frames, snapshot, replay), given up
    if the hub cuts `sub` meanwhile: a client that stopped reading must not pin the task.
    True: it was cut during the send (end the stream with `run_direct`)."""
    if sub is None:
        await writer.send(data)
        return False
    with trio.CancelScope() as scope:
        sub.wakeup = lambda: scope.cancel() if sub.cut_reason is not None else None
        try:
            await writer.send(data)
        finally:
            sub.wakeup = None
    # a cut before the send is not ours to handle: the session yields the final frame itself
    return scope.cancelled_caught


def attach(session: StreamSession, writer: DirectWriter) -> bool:
    """Switch a live session whose queue is empty to direct writes (no await: atomic)."""
    sub = session.sub
    if not session.live or sub is None or sub.cut_reason is not None or writer.dead:
        return False
    if sub.receive.statistics().current_buffer_used:
        return False
    writer.after = session.cursor
    writer.resume_direct()
    sub.deliver = writer.deliver
    return True


FINAL_FLUSH_S = 5.0  # how long a cut client gets to take what it is owed and the final frame


async def run_direct(session: StreamSession, writer: DirectWriter, heartbeat_s: float) -> str | None:
    """A stream's task once its frames are written by the publisher: heartbeats, whatever
    could not be written at once, the end of the stream; in between it sleeps (watching for
    the client leaving, when the session can). Returns the cut reason, None if the client left."""
    sub = session.sub
    assert sub is not None
    quiet_since, writes = trio.current_time(), writer.writes
    while True:
        if not (writer.raw or writer.backlog or writer.dead or sub.cut_reason is not None):
            with trio.move_on_at(quiet_since + heartbeat_s) as waiting:
                writer.wakeup = sub.wakeup = waiting.cancel
                if session.idle is not None:
                    session.gone = await session.idle()
                else:
                    await trio.sleep_forever()
            writer.wakeup = nothing
            sub.wakeup = None
        if session.gone or writer.dead:
            return None
        if sub.cut_reason is not None:
            break
        if writer.raw or writer.backlog:
            with trio.CancelScope() as flushing:
                sub.wakeup = flushing.cancel  # a cut interrupts a flush to a stalled client
                await writer.flush()
            sub.wakeup = None
            quiet_since = trio.current_time()
            continue
        writer.resume_direct()
        if writer.writes != writes:
            quiet_since, writes = trio.current_time(), writer.writes
        elif trio.current_time() >= quiet_since + heartbeat_s:
            writer.try_write(writer.encode([heartbeat(len(session.gw.hub))]))
            quiet_since, writes = trio.current_time(), writer.writes
    reason = sub.cut_reason
    await writer.close_with(writer.encode([final_frame(reason)]), FINAL_FLUSH_S)
    return reason

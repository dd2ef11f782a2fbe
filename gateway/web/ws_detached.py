"""Live WebSocket streams detached from Hypercorn, as live SSE streams are (detached.py).

In Quart and Hypercorn a WebSocket costs six tasks and ~300 GC-tracked objects, for a
stream that, once live, only needs its socket: the publisher writes its frames (direct.py),
and the client sends a few small messages, pongs and a close. So once the stream is live,
and nothing is in flight on either side, it takes its own descriptor for the connection,
takes Hypercorn's wsproto `Connection` (with whatever it had buffered), tells Hypercorn the
stream is closed (it forgets it without writing), and one task of ours carries on:

- client messages (subscribe, unsubscribe, resume, ping) through the same handlers and
  message budget as before, read with wsproto (ws_frames.py);
- transport pings every `ws_ping_interval_s`; a client silent (not a byte, not a pong) for
  `ws_idle_timeout_s` is closed with 1011;
- heartbeat frames, whatever the socket could not take at once, and the end: the final
  frame and close code of a cut (4008 slow consumer, 1001 shutdown, 4001 revoked), then a
  short wait for the client's close frame.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import trio
from wsproto.connection import ConnectionState

from ..auth import Slot
from ..streaming import StreamSession, final_frame, heartbeat
from .detached import DetachedConn
from .direct import FINAL_FLUSH_S, DirectWriter, attach, nothing
from .ws_frames import Closing, FrameReader

if TYPE_CHECKING:
    from .ws import WsConnection

logger = logging.getLogger(__name__)

CLOSE_LINGER_S = 2.0
MAX_MESSAGE_BYTES = 1024 * 1024  # a WebSocket message past this closes the socket (1009); past
# MAX_MESSAGE_CHARS it is answered with bad_message and the socket stays open


def hypercorn_ws(tcp: Any) -> Any:
    """Hypercorn's WSStream on a plain HTTP/1.1 connection, else None."""
    return getattr(getattr(getattr(tcp, "protocol", None), "protocol", None), "stream", None)


def quiet(c: WsConnection, tcp: Any, stream: Any) -> bool:
    """Nothing in flight between the client, Hypercorn and our reader: Hypercorn's reader
    waits on the socket with no event half-handled, no partial message is buffered, no
    message waits in the app's queue (our reader reads it directly: asgi_websocket.py), and
    our reader is not handling one."""
    queue = getattr(getattr(stream, "app_put", None), "gw_queue", None)
    return bool(getattr(tcp, "gw_reading", False) and not c.reader_busy
                and queue is not None and not queue.statistics().current_buffer_used
                and not stream.closed and stream.buffer.value is None
                and stream.connection.state is ConnectionState.OPEN)


def detach_ws(c: WsConnection, slot: Slot) -> bool:
    """Move a live, attached WebSocket stream off Hypercorn and Quart (no await: nothing can
    happen meanwhile). False: it stays where it is."""
    gw, writer, session = c.gw, c.direct, c.session
    if gw.detached is None or gw.shutting_down or not gw.config.streams.detach_live_streams:
        return False
    if writer is None or writer.raw or writer.backlog or writer.dead or session is None:
        return False
    sub = session.sub
    if sub is None or not session.live or sub.cut_reason is not None or c.ended is not None:
        return False
    tcp = writer.conn
    stream = hypercorn_ws(tcp)
    if stream is None or not quiet(c, tcp, stream):
        return False
    try:
        own = trio.socket.from_stdlib_socket(socket.socket(fileno=os.dup(tcp.stream.socket.fileno())))
    except OSError:
        return False
    stream.closed = True  # Hypercorn forgets the stream: no more events to the app, no writes
    pings = getattr(stream, "_gw_ping_scope", None)
    if pings is not None:
        pings.cancel()
    frames = FrameReader(stream.connection, MAX_MESSAGE_BYTES)
    tcp.gw_direct = None
    writer.conn = DetachedConn(own)
    writer.is_open = lambda: frames.open
    live = StreamSession(gw, session.plan, left=lambda: writer.dead)
    live.sub, session.sub = sub, None  # the subscription is the detached task's now
    live.live, live.cursor = True, session.cursor
    c.session = live
    gw.detached_open += 1
    gw.detached.start_soon(_run, c, own, frames, slot)
    tcp.stream.socket.close()  # Hypercorn lets go of the connection; ours keeps it open
    return True


async def _run(c: WsConnection, own: trio.socket.SocketType, frames: FrameReader, slot: Slot) -> None:
    gw = c.gw
    try:
        with trio.move_on_after(5):  # the request's task ends at once; a message it had not handled is ours
            await c.handed_over.wait()
        closing: Closing | str | None = None
        for raw in list(c.unhandled):
            c.unhandled.remove(raw)
            if not await c.on_message(raw):
                closing = frames.close(*(c.closing or (1008, "")))
                break
            if c.resume_to is not None:
                await resume(c)
        closing = closing or await serve(c, own, frames)
        await _close(c, own, frames, closing)
    except Exception:
        logger.exception("a detached WebSocket failed")
    finally:
        if c.session is not None:
            c.session.close()
        slot.release()
        from .ws import conn_done

        conn_done(c, slot)
        own.close()
        gw.detached_open -= 1
        gw.detached_gone.set()


async def serve(c: WsConnection, own: trio.socket.SocketType, frames: FrameReader) -> Closing | str | None:
    """Serve the live stream until it ends: a Closing (by the client or a protocol rule), the
    hub's cut reason (str), or None once the client is gone."""
    cfg, writer = c.gw.config.streams, c.direct
    assert writer is not None
    ping_every, idle_after = cfg.ws_ping_interval_s, cfg.ws_idle_timeout_s
    now = trio.current_time()
    last_rx, next_ping, quiet_since, writes = now, now + ping_every, now, writer.writes
    while True:
        session = c.session
        sub = session.sub if session is not None else None
        if writer.dead:
            return None
        if c.closing is not None:
            return frames.close(*c.closing)
        if sub is None or sub.cut_reason is not None:
            return (sub.cut_reason if sub is not None else None) or (session.ended if session else None)
        if writer.raw or writer.backlog:
            with trio.CancelScope() as flushing:
                sub.wakeup = flushing.cancel  # a cut interrupts a flush to a stalled client
                await writer.flush()
            sub.wakeup = None
            continue
        writer.resume_direct()
        now = trio.current_time()
        if writer.writes != writes:
            quiet_since, writes = now, writer.writes
        if now - last_rx >= idle_after:
            logger.info("closing a WebSocket client silent for %.1f s (ping timeout)", now - last_rx)
            return frames.close(1011, "ping timeout")
        if now >= next_ping:
            writer.push(frames.ping())
            next_ping = now + ping_every
        if now >= quiet_since + c.plan.heartbeat_s:
            writer.push(writer.encode([heartbeat(len(c.gw.hub))]))
            quiet_since, writes = now, writer.writes
        data: bytes | None = None
        with trio.move_on_at(min(quiet_since + c.plan.heartbeat_s, next_ping, last_rx + idle_after)) as waiting:
            writer.wakeup = sub.wakeup = waiting.cancel
            try:
                data = await own.recv(65536)
            except OSError:
                data = b""
        writer.wakeup, sub.wakeup = nothing, None
        if data is None:
            continue
        last_rx = trio.current_time()
        read = frames.feed(data)
        if read.replies:
            writer.push(read.replies)
        for message in read.messages:
            if not await c.on_message(message):
                break
            if c.resume_to is not None:
                await resume(c)
                last_rx = trio.current_time()
        if read.closing is not None:
            return read.closing


async def resume(c: WsConnection) -> None:
    """`{"type":"resume"}` on a detached stream: a new session from that id, replayed on this
    task, then live again (the same no-gap, no-duplicate rules as on connect)."""
    writer = c.direct
    assert writer is not None and c.resume_to is not None
    last_id, c.resume_to = c.resume_to, None
    if c.session is not None:
        c.session.close()
    c.plan = c._plan(c.plan.filter, last_id, False, resumed_from=last_id)
    session = c.session = StreamSession(c.gw, c.plan, left=lambda: writer.dead)
    if c.ended is not None:
        session.end(c.ended)
    async with aclosing(session.frames()) as batches:
        async for batch in batches:
            if await c.send_batch(batch) or await _go_live(c, session, writer):
                live = StreamSession(c.gw, session.plan, left=lambda: writer.dead)
                live.sub, session.sub = session.sub, None
                live.live, live.cursor, live.ended = True, session.cursor, session.ended
                c.session = live
                return


async def _go_live(c: WsConnection, session: StreamSession, writer: DirectWriter) -> bool:
    """Attach a session that just went live to the direct writer, sending first what was
    published during its replay (queued for it) rather than waiting for the next publish:
    this task reads the client's messages only once `resume` returns, and a client waiting
    on the answer to its next resume waited a heartbeat or longer (a test hung under load).
    True: attached, or cut meanwhile; False: not possible (the session goes on as it is)."""
    while session.live and not writer.dead and session.sub is not None and session.sub.cut_reason is None:
        if attach(session, writer):
            return True
        if await c.send_batch(session.queued()):
            return True
    return False


async def _close(c: WsConnection, own: trio.socket.SocketType, frames: FrameReader,
                 closing: Closing | str | None) -> None:
    """The end: the final frame (for a cut), our close frame, then a short wait for the
    client's close (returning at once would reset the connection, and browsers report 1006
    instead of the code)."""
    writer = c.direct
    assert writer is not None
    if closing is None:
        return
    writer.is_open = None  # our close frame is on its way: what goes before it may still be written
    if isinstance(closing, str):
        code, reason = c.close_for(closing)
        final = writer.encode([final_frame(closing)]) + frames.close(code, reason).reply
    elif closing.by_client:
        if closing.reply:
            writer.push(closing.reply)
            with trio.move_on_after(FINAL_FLUSH_S):
                await writer.flush()
        return
    else:
        final = closing.reply
    await writer.close_with(final, FINAL_FLUSH_S)
    if writer.dead:
        return
    with trio.move_on_after(CLOSE_LINGER_S):
        while True:
            try:
                data = await own.recv(65536)
            except OSError:
                return
            if frames.feed(data).closing is not None or not data:
                return

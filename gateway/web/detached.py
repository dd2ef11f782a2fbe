"""Live SSE streams detached from Hypercorn: what an idle stream costs is what we keep.

Once a stream is live, the publisher writes its frames straight to the socket (direct.py)
and Hypercorn only watches for the client leaving, yet its per-connection machinery (two
tasks, h11 state, the request's app channel, the response) is most of an idle stream's
memory. So at that point the stream takes its own descriptor for the connection (`dup`),
Hypercorn's socket object is closed (its tasks see the connection end and free everything;
the TCP connection stays open through our descriptor), and one task of ours carries on:
heartbeats, whatever the socket could not take at once, the end of the stream, and a read
that notices the client leaving. The HTTP/1.1 body it continues is the same chunked body,
ended with the last chunk; the connection is then closed (no keep-alive after a stream).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import trio

from ..auth import Slot
from ..handle import Gateway
from ..streaming import StreamSession
from .direct import DirectWriter, run_direct

logger = logging.getLogger(__name__)


class DetachedConn:
    """What a DirectWriter needs of a connection (`send_lock`, `stream.socket`), on our own
    descriptor; nobody else writes on it, so its lock is only ever ours."""

    __slots__ = ("gw_direct", "send_lock", "socket")

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.socket = sock
        self.send_lock = trio.Lock()
        self.gw_direct: DirectWriter | None = None

    @property
    def stream(self) -> DetachedConn:
        return self


def detach(gw: Gateway, conn: Any, session: StreamSession, writer: DirectWriter, slot: Slot, *,
           chunked: bool) -> bool:
    """Move a live, attached stream off Hypercorn (no await: nothing is written meanwhile).
    False: it stays where it is (no nursery, nothing may be pending, or no descriptor)."""
    nursery = gw.detached
    if nursery is None or gw.shutting_down or writer.raw or writer.backlog or writer.dead:
        return False
    try:
        own = trio.socket.from_stdlib_socket(socket.socket(fileno=os.dup(conn.stream.socket.fileno())))
    except OSError:
        return False
    conn.gw_direct = None
    writer.conn = DetachedConn(own)
    live = StreamSession(gw, session.plan)
    live.sub, session.sub = session.sub, None  # the subscription is ours now, not the request's
    live.live = True
    slot.on_end = live.end
    gw.detached_open += 1
    nursery.start_soon(_run, gw, live, writer, own, slot, chunked)
    conn.stream.socket.close()  # Hypercorn lets go of the connection; ours keeps it open
    return True


async def _run(gw: Gateway, live: StreamSession, writer: DirectWriter, own: trio.socket.SocketType, slot: Slot,
               chunked: bool) -> None:
    async def gone() -> bool:  # an SSE client sends nothing more: any byte is ignored, EOF is the end
        try:
            while await own.recv(4096):
                pass
        except OSError:
            pass
        return True

    live.idle = gone
    try:
        reason = await run_direct(live, writer, live.plan.heartbeat_s)
        if reason is not None and chunked and not writer.dead:
            writer.try_write(b"0\r\n\r\n")  # the body's last chunk, after the final frame
    except Exception:
        logger.exception("a detached stream failed")
    finally:
        live.close()
        slot.release()
        own.close()
        gw.detached_open -= 1
        gw.detached_gone.set()

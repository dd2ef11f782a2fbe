"""A detached WebSocket's client frames, read with wsproto (the library Hypercorn uses).

A live WebSocket stream leaves Hypercorn (ws_detached.py) with Hypercorn's own wsproto
`Connection`, so whatever it had buffered (a partial frame, the negotiated extensions and
their state) carries on. wsproto does the protocol: unmasking, fragmentation, control
frames between fragments, UTF-8 across fragments, and refusing what RFC 6455 forbids (an
unmasked client frame, a reserved opcode: close 1002). This module adds what the gateway
needs on top: whole messages up to a size limit (else close 1009), pong replies, and the
close handshake, as plain values the transport acts on. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError

TOO_BIG = 1009
NORMAL = 1000


@dataclass(frozen=True, slots=True)
class Closing:
    """The connection is over: send `reply` (our close frame, maybe empty) and close TCP."""

    code: int
    reason: str
    by_client: bool
    reply: bytes


@dataclass(slots=True)
class Read:
    """What a chunk of client bytes amounts to, in order of arrival."""

    messages: list[str | bytes]
    replies: bytes  # pongs (and nothing else) to send back
    closing: Closing | None = None


class FrameReader:
    def __init__(self, conn: Connection, max_message: int) -> None:
        self.conn = conn
        self.max_message = max_message
        self._parts: list[str | bytes] = []
        self._size = 0

    @property
    def open(self) -> bool:
        return self.conn.state is ConnectionState.OPEN

    def feed(self, data: bytes) -> Read:
        """Bytes from the client (b"" = the TCP stream ended)."""
        out = Read([], b"")
        self.conn.receive_data(data or None)
        for event in self.conn.events():
            if isinstance(event, Message):
                if not self._message(event, out):
                    out.closing = self.close(TOO_BIG, f"message over {self.max_message} bytes")
                    return out
            elif isinstance(event, Ping):
                out.replies += self._send(event.response())
            elif isinstance(event, Pong):
                pass  # a sign of life, as any byte is
            elif isinstance(event, CloseConnection):
                if self.conn.state is ConnectionState.OPEN:  # wsproto refused a frame: close with its code
                    out.closing = self.close(event.code, event.reason or "protocol error")
                else:  # the client's close (answered), or its answer to ours
                    reply = self._send(event.response()) if self.conn.state is ConnectionState.REMOTE_CLOSING else b""
                    out.closing = Closing(event.code, event.reason or "", True, reply)
                return out
        if not data and out.closing is None:
            out.closing = Closing(1006, "connection lost", True, b"")
        return out

    def _message(self, event: Message[Any], out: Read) -> bool:
        self._size += len(event.data)
        if self._size > self.max_message:
            return False
        self._parts.append(event.data)
        if event.message_finished:
            if isinstance(event, TextMessage):
                out.messages.append("".join(p for p in self._parts if isinstance(p, str)))
            elif isinstance(event, BytesMessage):
                out.messages.append(b"".join(p for p in self._parts if isinstance(p, bytes | bytearray)))
            self._parts, self._size = [], 0
        return True

    def ping(self) -> bytes:
        return self._send(Ping())

    def close(self, code: int, reason: str) -> Closing:
        """Our side ends the connection with `code`."""
        return Closing(code, reason, False, self._send(CloseConnection(code=code, reason=reason[:120])))

    def _send(self, event: Ping | CloseConnection | Pong) -> bytes:
        try:
            return self.conn.send(event)
        except LocalProtocolError:  # already closing or closed: nothing more to say
            return b""

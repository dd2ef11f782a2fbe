"""Keep-alive ingest connections served without Hypercorn (issue 19).

Profiled, a one-quote POST cost ~1.2 ms of CPU after it left Quart, and ~600 us of it was
Hypercorn's HTTP/1.1 machinery per request (h11's parser and writer, a stream, a task and
its queue), the same for a no-op ASGI app. A push feeder sends its requests one after the
other on one connection, all alike. So after a 200 to an ingest POST on a plain HTTP/1.1
connection that is idle (no next request under way, nothing buffered), the connection
leaves Hypercorn as live streams do (detached.py): it takes its own descriptor, Hypercorn's
socket object is closed (its tasks end without writing), and one task of ours serves the
connection's next requests while they are ingest POSTs it can read exactly:

- a request it takes is `POST /v1/ingest/odds|pbp HTTP/1.1` with one Host, one
  Content-Length, and no Transfer-Encoding, Expect or Upgrade, whose whole head (at most
  MAX_HEAD bytes) is already in the socket. Its head is looked at with MSG_PEEK first:
- anything else (another route, a chunked body, a head split across packets, HTTP/1.0,
  anything odd) is handed back, unread, to a new Hypercorn connection object on the same
  socket, which serves it and the rest of the connection as any other;
- the route is ingest_http.answer_post: the same answers, headers (CORS, X-Request-ID,
  quota), access log (the client from X-Forwarded-For when the peer is a trusted proxy),
  rate limits and 503/421 rules as through Hypercorn;
- the same bounds: a body past `max_body_bytes` is 413 and the connection closes (its body
  is not read); a body that stalls for `body_timeout_s` is 408 and the connection closes; a
  connection idle for KEEP_ALIVE_S closes, and while idle it counts against
  `max_pending_connections` as an idle Hypercorn connection does; an answer the client
  does not take within `write_stall_timeout_s` closes it. At shutdown an idle connection
  closes at once, a request under way is answered first.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import h11
import trio

from ..handle import Gateway
from .asgi_scope import Headers, request_id
from .common import ApiError
from .direct import plain_socket_fd
from .errors import access_log, cors_headers
from .hypercorn_patches import LINGER_S, _admit
from .ingest import KINDS
from .ingest_http import ClientLeft, answer_post, too_large
from .proxies import TrustedProxies

logger = logging.getLogger(__name__)

KEEP_ALIVE_S = 75.0  # as Hypercorn's keep_alive_timeout (app.py)
MAX_HEAD = 16 * 1024  # as h11's largest incomplete event


@dataclass(frozen=True, slots=True)
class Request:
    kind: str
    target: str  # path and query, for the log
    query: str
    headers: Headers
    content_length: int
    close: bool  # Connection: close


class KeptConn:
    """A kept ingest connection. `stream.socket` is what the pending-connection limit closes
    (hypercorn_patches._abort) when it evicts the oldest idle connection."""

    __slots__ = ("hypercorn", "idle", "peer", "proxies", "raw", "socket", "stopping")

    def __init__(self, raw: socket.socket, hypercorn: tuple[Any, Any, Any, Any], proxies: TrustedProxies | None,
                 peer: str) -> None:
        # I/O goes straight to the non-blocking socket, waiting through trio only when it would
        # block (a trio socket yields to the scheduler on every call, ~10-20 us each)
        self.raw = raw
        self.socket = self  # what _abort closes: `stream.socket.close()`
        self.hypercorn = hypercorn  # (app, config, context, state): a TCPServer again on hand-back
        self.proxies = proxies
        self.peer = peer
        self.idle: trio.CancelScope | None = None
        self.stopping = False

    def close(self) -> None:
        """Close from outside the connection's task (an eviction): its wait ends at once."""
        if self.raw.fileno() >= 0:
            trio.lowlevel.notify_closing(self.raw)
            self.raw.close()

    @property
    def stream(self) -> KeptConn:
        return self


def take_over(gw: Gateway, tcp: Any, status: int, headers: dict[str, str], body: bytes) -> bool:
    """Instead of answering a 200 to an ingest POST through Hypercorn: take the connection off
    it, if it is a plain HTTP/1.1 connection whose request is read and with nothing after it,
    and let our task write the answer and serve what follows. Taken before the answer is
    written, so that no next request can be under way (after it, the client's next request
    won the race against the app's task most of the time). No await: nothing happens meanwhile."""
    if tcp is None or gw.detached is None or gw.shutting_down or plain_socket_fd(tcp) is None:
        return False
    protocol = getattr(getattr(tcp, "protocol", None), "protocol", None)
    conn = getattr(protocol, "connection", None)
    hypercorn: tuple[Any, ...] = tuple(getattr(tcp, name, None) for name in ("app", "config", "context", "state"))
    if not isinstance(conn, h11.Connection) or any(part is None for part in hypercorn):
        return False
    trailing, closed = conn.trailing_data
    if (conn.our_state is not h11.SEND_RESPONSE or conn.their_state is not h11.DONE or trailing or closed
            or not getattr(tcp, "gw_reading", False) or getattr(tcp, "gw_read_done", False)
            or tcp.send_lock.locked() or hypercorn[2].terminated.is_set()
            or getattr(protocol, "keep_alive_requests", 0) >= hypercorn[1].keep_alive_max_requests):
        return False
    try:
        raw = socket.socket(fileno=os.dup(tcp.stream.socket.fileno()))
        raw.setblocking(False)
        peer = str(raw.getpeername()[0])
    except OSError:
        return False
    proxies = TrustedProxies(gw.config.server.trusted_proxies) if gw.config.server.trusted_proxies else None
    kept = KeptConn(raw, hypercorn, proxies, peer)  # type: ignore[arg-type]
    gw.detached_open += 1
    gw.ingest_kept += 1
    gw.ingest_kept_total += 1
    gw.detached.start_soon(_run, gw, kept, _response(status, headers, body))
    # Hypercorn lets go: its reader ends, and what the app sends it next meets a closed socket
    tcp.stream.socket.close()
    return True


async def _run(gw: Gateway, kept: KeptConn, first: bytes) -> None:
    handed_back = False
    try:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_watch_shutdown, gw, kept)
                handed_back = await _send(gw, kept.raw, first) and await _serve(gw, kept)
                nursery.cancel_scope.cancel()
        finally:
            gw.ingest_kept -= 1
        if handed_back:
            await _hand_back(kept)
    except Exception:
        logger.exception("a kept ingest connection failed")
    finally:
        if gw.limits is not None:
            gw.limits.pending.pop(kept, None)
        if not handed_back:
            kept.close()
        gw.detached_open -= 1
        gw.detached_gone.set()


async def _watch_shutdown(gw: Gateway, kept: KeptConn) -> None:
    await gw.shutdown_started.wait()
    kept.stopping = True
    if kept.idle is not None:
        kept.idle.cancel()


async def _serve(gw: Gateway, kept: KeptConn) -> bool:
    """Serve requests until the connection ends (False) or one must go back to Hypercorn (True)."""
    raw = kept.raw
    while True:
        try:
            peeked = raw.recv(MAX_HEAD, socket.MSG_PEEK)
        except BlockingIOError:
            if gw.limits is not None:
                _admit(gw.limits, kept)  # idle between requests: pending, as Hypercorn counts its own
            with trio.move_on_after(KEEP_ALIVE_S) as idle:
                kept.idle = idle
                if kept.stopping:
                    return False
                await trio.lowlevel.wait_readable(raw)
            kept.idle = None
            if idle.cancelled_caught or kept.stopping:
                return False  # idle too long, or shutting down
            continue
        except OSError:
            return False
        if not peeked:
            return False  # the client closed the connection
        end = peeked.find(b"\r\n\r\n")
        request = parse_head(peeked[:end]) if end >= 0 else None
        if request is None:
            return True  # not ours: Hypercorn reads it
        if gw.limits is not None:
            gw.limits.pending.pop(kept, None)
        try:
            raw.recv(end + 4)  # the head, peeked at: all of it is in the socket
        except OSError:
            return False
        if not await _answer(gw, kept, request) or request.close:
            return False


async def _answer(gw: Gateway, kept: KeptConn, r: Request) -> bool:
    """Read the body, answer it; False: the connection must close (413, 408, a stall, a bug)."""
    started = time.perf_counter()
    rid = request_id(r.headers)
    out = {"X-Request-ID": rid, **cors_headers(KIND_PATHS[r.kind], r.headers.get("origin"),
                                                gw.config.server.cors_origins)}
    whole = False

    async def read(limit: int) -> bytes:
        nonlocal whole
        if r.content_length > limit:
            raise too_large(limit)
        data = await _read_exactly(gw, kept.raw, r.content_length)
        whole = True
        return data

    status, headers, body, key_name = await answer_post(gw, r.kind, r.headers, r.query, rid, read)
    if status == 499:
        _log(kept, r, status, started, "-", rid)
        return False
    # refused before its body was read (401, 429, 503): answered at once, then the body is read
    # and dropped (within body_timeout_s) so that the connection goes on
    drop_body = not whole and status != 408 and r.content_length <= gw.config.server.max_body_bytes
    keep = (whole or drop_body) and not kept.stopping
    if not keep:
        headers = {**headers, "Connection": "close"}
    ok = await _send(gw, kept.raw, _response(status, {**headers, **out}, body))
    _log(kept, r, status, started, key_name, rid)
    if not ok:
        return False
    if drop_body and keep:
        try:
            await _read_exactly(gw, kept.raw, r.content_length)
        except (ApiError, ClientLeft):
            return False
    elif not whole and status != 408:
        await _linger(kept.raw)  # a 413 (or a refusal at shutdown): the client may still be sending
    return keep


async def _linger(raw: socket.socket) -> None:
    """A lingering close: a client still sending a body it was refused reads the answer before
    our close turns what it sends next into a reset (RFC 9112, 9.6)."""
    try:
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        return
    with trio.move_on_after(LINGER_S):
        while True:
            try:
                if not raw.recv(65536):
                    return
            except BlockingIOError:
                await trio.lowlevel.wait_readable(raw)
            except OSError:
                return


async def _read_exactly(gw: Gateway, raw: socket.socket, n: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        try:
            data = raw.recv(min(n, 65536))
        except BlockingIOError:
            with trio.move_on_after(gw.config.server.body_timeout_s) as waited:
                await trio.lowlevel.wait_readable(raw)
            if waited.cancelled_caught:
                if gw.limits is not None:
                    gw.limits.timed_out += 1
                raise ApiError(408, "request_timeout", "the request body stalled past its timeout "
                               f"([server] body_timeout_s = {gw.config.server.body_timeout_s:g}); the connection is "
                               "closed") from None
            continue
        except OSError:
            raise ClientLeft from None
        if not data:
            raise ClientLeft
        parts.append(data)
        n -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _send(gw: Gateway, raw: socket.socket, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            view = view[raw.send(view):]
        except BlockingIOError:
            with trio.move_on_after(gw.config.streams.write_stall_timeout_s) as waited:
                await trio.lowlevel.wait_writable(raw)
            if waited.cancelled_caught:
                return False
        except OSError:
            return False
    return True


_date = (0, "")


def _http_date() -> str:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def _response(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", f"date: {_http_date()}"]
    lines += [f"{k.lower()}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _log(kept: KeptConn, r: Request, status: int, started: float, key_name: str, rid: str) -> None:
    peer = kept.peer
    if kept.proxies is not None:
        peer = kept.proxies.client(peer, r.headers.getlist("x-forwarded-for"))
    access_log(peer, "POST", r.target, status, started, key_name, rid)


async def _hand_back(kept: KeptConn) -> None:
    """The connection goes on in Hypercorn: a new connection object on the same socket,
    which reads the request we did not take (it is still in the socket)."""
    from hypercorn.trio.tcp_server import TCPServer

    app, config, context, state = kept.hypercorn
    stream: Any = trio.SocketStream(trio.socket.from_stdlib_socket(kept.raw))  # plain: no handshake method
    await TCPServer(app, config, context, state, stream).run()


KIND_PATHS = {kind: path for path, kind in KINDS.items()}
_TARGET = re.compile(rb"[\x21-\x7e]+")  # visible ASCII, as h11 takes a request target
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a token, as RFC 9110 names a field
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # not in a field value (tabs are)


def parse_head(head: bytes) -> Request | None:
    """A request head this module serves, else None (Hypercorn will). Strict on purpose: what
    h11 would refuse or read differently is never taken here."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1" or not _TARGET.fullmatch(parts[1]):
        return None
    target = parts[1]
    path, _, query = target.partition(b"?")
    kind = KINDS.get(path.decode("ascii"))
    if kind is None:
        return None
    raw: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    hosts = 0
    close = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _NAME.fullmatch(name) or _CONTROL.search(value):
            return None
        name, value = name.lower(), value.strip(b" \t")
        if name in _REFUSED:
            return None
        if name == b"content-length":
            if length is not None:
                return None
            length = value
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            close = close or any(t.strip().lower() == b"close" for t in value.split(b","))
        raw.append((name, value))
    if hosts != 1 or length is None or not length.isdigit() or len(length) > 15:
        return None
    return Request(kind, target.decode("ascii"), query.decode("ascii"), Headers(raw), int(length), close)


_REFUSED = frozenset((b"transfer-encoding", b"expect", b"upgrade"))

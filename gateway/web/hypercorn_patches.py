"""Every patch of Hypercorn's internals, in one place, checked at start-up.

Hypercorn 0.17/0.18's trio server is what serves every connection, and a few of its
behaviours are unsafe for a server on a network or block what the gateway needs. Each
patch below is small, wraps the original where it can, and says why it exists:

- `TCPServer.run`: (1) expose the connection to the app (a context variable) so live
  streams can write straight to the socket (direct.py) and leave Hypercorn (detached.py);
  (2) contain failures: whatever goes wrong inside one connection ends that connection
  and is logged, it never reaches the listener's nursery (an uncaught exception there
  stops the whole server: Hypercorn issue 203, a `BusyResourceError` anyone could
  trigger with a truncated POST and a FIN).
- `TCPServer._close`: its `send_eof` ran without the send lock while another task could be
  writing the response (the `BusyResourceError` above), and unshielded, so a close started
  by the app's task after a response to a request whose body had not all come (a 401 or 413)
  was cancelled with the app and never happened; now it takes the lock and is shielded.
- `TCPServer._read_data`: bounded time for what a client owes: a request head must arrive
  within `header_timeout_s` of the first byte (of a connection or a request), a body must
  not stall for `body_timeout_s` (408 with the JSON envelope, then close). Once the read
  loop has ended, the idle task stops and is never restarted, so a connection closes as soon
  as its client left (Hypercorn kept it `keep_alive_timeout`: 1,309 descriptors after 10,000
  cycles before this).
- `TCPServer.protocol_send`: direct writers finish a started frame before Hypercorn writes
  on the same socket (a WebSocket ping or close must not land inside one of our frames).
- Pending connections (no whole request yet, or idle between requests) are counted per
  server; past `max_pending`, the oldest of them that has waited over a second is closed, so
  clients that hold connections without finishing a request cannot starve the rest.
- `TaskGroup.spawn_app`: once the app has returned, what the client still sends is
  dropped. Before, Hypercorn's reader blocked for ever passing messages to an app that had
  returned (its queue holds 10): a WebSocket flooded with frames kept its socket and tasks
  after the client was gone, with or without a key.
- `WSStream`: transport pings with a deadline (`ws_idle_timeout_s`): a client that sends
  nothing for that long, not even a pong, is closed with 1011 (Hypercorn ignores pongs).
- `trio.serve_listeners`' "accept returned EMFILE" is logged once a second without a
  traceback (it logged one per accept attempt, 10 a second, while descriptors ran out).

`install()` checks that every internal it relies on is there and raises `HypercornMismatch`
naming the installed version if not: a newer Hypercorn must be checked by hand (the tests
cover each patch), not run half patched.
"""

from __future__ import annotations

import contextvars
import logging
import time
from importlib.metadata import version
from math import inf
from typing import Any

import trio

from ..netlimits import Limits

logger = logging.getLogger("gateway.web")

CURRENT_CONNECTION: contextvars.ContextVar[Any] = contextvars.ContextVar("gateway_tcp_connection", default=None)
LINGER_S = 1.0  # after our FIN, how long a close waits for the client's
PENDING_GRACE_S = 1.0  # a pending connection younger than this is never evicted (connect storms)
CLOSE_PING_TIMEOUT = 1011


class HypercornMismatch(RuntimeError):
    """The installed Hypercorn lacks an internal these patches need."""


def limits_of(server: Any) -> Limits | None:
    limits = getattr(getattr(server, "config", None), "gateway", None)
    return limits if isinstance(limits, Limits) else None


_installed = False


def install() -> None:
    """Patch once per process (idempotent). Raises HypercornMismatch if an internal is missing."""
    global _installed
    if _installed:
        return
    try:
        import h11
        from hypercorn.events import Closed, RawData, Updated
        from hypercorn.protocol import ws_stream
        from hypercorn.protocol.events import Data, StreamClosed
        from hypercorn.protocol.h11 import H11Protocol
        from hypercorn.trio import task_group
        from hypercorn.trio.tcp_server import TCPServer
        from wsproto.events import CloseConnection, Ping

        needed = {TCPServer: ("run", "_read_data", "_close", "protocol_send", "idle_task", "send_lock"),
                  task_group.TaskGroup: ("spawn_app",), task_group: ("_handle",),
                  ws_stream.WSStream: ("handle", "_send_pings", "_send_wsproto_event"),
                  H11Protocol: ("_send_h11_event",)}
        for owner, names in needed.items():
            for name in names:
                if name in ("idle_task", "send_lock"):
                    continue  # instance attributes, checked on first use
                if not hasattr(owner, name):
                    raise AttributeError(f"{getattr(owner, '__name__', owner)}.{name}")
    except (ImportError, AttributeError) as exc:
        raise HypercornMismatch(
            f"Hypercorn {version('hypercorn')} lacks {exc}: the gateway's patches (gateway/web/hypercorn_patches.py) "
            "were written for 0.17/0.18; install hypercorn<0.19") from None
    _patch_tcp_server(TCPServer, h11, H11Protocol, Closed, RawData, Updated)
    _patch_spawn_app(task_group)
    _patch_ws_stream(ws_stream, Data, StreamClosed, CloseConnection, Ping)
    logging.getLogger("trio.serve_listeners").addFilter(_OncePerSecond())
    _installed = True


# -- TCPServer -----------------------------------------------------------------------------

def _patch_tcp_server(cls: Any, h11: Any, h11_protocol: Any, closed: Any, raw_data: Any, updated: Any) -> None:
    original_run, original_send = cls.run, cls.protocol_send

    async def run(self: Any) -> None:
        CURRENT_CONNECTION.set(self)
        limits = limits_of(self)
        if limits is not None:
            _admit(limits, self)
        try:
            await original_run(self)
        except Exception as exc:
            _contained(limits, exc)
            await _force_close(self)
        except BaseExceptionGroup as group:  # Cancelled beside real errors: contain these, let it cancel
            cancelled, errors = group.split(trio.Cancelled)
            if errors is None:
                raise
            _contained(limits, errors)
            await _force_close(self)
            if cancelled is not None:
                raise cancelled from None
        finally:
            if limits is not None:
                limits.pending.pop(self, None)
            # the connection references its protocol, which references it back (its
            # protocol_send): ~30 objects of cyclic garbage per connection, freed only by a
            # full GC pass (rare by design here). The connection is over: break the cycle.
            self.__dict__.clear()

    async def _close(self: Any) -> None:
        # Hypercorn's send_eof ran unlocked: a response being written meanwhile raised
        # BusyResourceError (trio's send_eof checkpoints inside its conflict detector). And
        # it ran unshielded: when the app's task closed the connection after a response to a
        # request whose body had not all come (a 401 or 413 before reading it), the app's own
        # cancellation aborted the close, and the connection stayed open for ever.
        with trio.CancelScope(shield=True):
            lock = self.send_lock
            if lock.statistics().owner is not trio.lowlevel.current_task():
                with trio.move_on_after(1.0) as waited:
                    await lock.acquire()
                if not waited.cancelled_caught:
                    try:
                        await _eof(self)
                    finally:
                        lock.release()
                # a lingering close: a client still sending a body it was refused (413) reads
                # the answer before our close turns what it sends next into a reset
                with trio.move_on_after(LINGER_S):
                    await _read_done(self).wait()
            with trio.move_on_after(1.0) as closing:
                await self.stream.aclose()
            if closing.cancelled_caught:
                _abort(self)

    async def _read_data(self: Any) -> None:
        limits = limits_of(self)
        head_started: float | None = None
        while True:
            timeout, head_started = _read_deadline(self, limits, h11, head_started)
            try:
                with trio.fail_at(timeout) if timeout < inf else trio.CancelScope():
                    self.gw_reading = True  # idle on the socket, nothing half-handled (ws_detached.py)
                    try:
                        data = await self.stream.receive_some(65536)
                    finally:
                        self.gw_reading = False
            except trio.TooSlowError:
                await _timed_out(self, limits, h11)
                break
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(raw_data(bytes(data)))
            if data == b"":
                break
            if limits is not None:
                _track(limits, self, h11)
        await self.protocol.handle(closed())
        self.gw_read_done = True
        _read_done(self).set()
        idle = getattr(self, "idle_task", None)
        if idle is not None:
            await idle.stop()

    async def protocol_send(self: Any, event: Any) -> None:
        if isinstance(event, updated):
            if event.idle and getattr(self, "gw_read_done", False):
                return  # no next request can come: do not wait keep_alive_timeout for one
            limits = limits_of(self)
            if limits is not None and event.idle:
                _admit(limits, self)  # idle between requests: pending again
        writer = getattr(self, "gw_direct", None)
        if writer is None or not isinstance(event, raw_data):
            await original_send(self, event)
            return
        async with self.send_lock:  # Hypercorn's own RawData branch, our started frame first
            await writer.finish_raw_locked()
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(closed())

    cls.run, cls._close, cls._read_data, cls.protocol_send = run, _close, _read_data, protocol_send


def _read_done(server: Any) -> trio.Event:
    event: trio.Event | None = getattr(server, "gw_read_event", None)
    if event is None:
        event = server.gw_read_event = trio.Event()
    return event


async def _eof(server: Any) -> None:
    try:
        await server.stream.send_eof()
    except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError, AttributeError, OSError):
        pass  # already gone, or TLS (no half-close)


async def _force_close(server: Any) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1.0):
        try:
            await server.stream.aclose()
        except Exception:
            pass


def _h11_connection(server: Any, h11: Any) -> Any:
    """The connection's h11.Connection while it speaks plain HTTP/1.1 (not WebSocket, not h2)."""
    conn = getattr(getattr(getattr(server, "protocol", None), "protocol", None), "connection", None)
    return conn if isinstance(conn, h11.Connection) else None


def _read_deadline(server: Any, limits: Limits | None, h11: Any, head_started: float | None
                   ) -> tuple[float, float | None]:
    """(deadline for the next read, when the current request head started)."""
    conn = None if limits is None else _h11_connection(server, h11)
    if conn is None or limits is None:
        return inf, None
    now = trio.current_time()
    state = conn.their_state
    if state is h11.IDLE:
        if head_started is None and (conn.trailing_data[0] or not getattr(server, "gw_served", False)):
            head_started = now  # a new connection, or bytes of a next request: its head is owed
        return (inf if head_started is None else head_started + limits.header_timeout_s), head_started
    if state is h11.SEND_BODY:
        return now + limits.body_timeout_s, None
    server.gw_served = True
    return inf, None


async def _timed_out(server: Any, limits: Limits | None, h11: Any) -> None:
    """A head or body that stalled: 408 if no response has started, then the connection closes."""
    if limits is not None:
        limits.timed_out += 1
    conn = _h11_connection(server, h11)
    if conn is None or conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    if conn.their_state is h11.IDLE and not conn.trailing_data[0]:
        return  # nothing was sent: just close
    what = "request body" if conn.their_state is h11.SEND_BODY else "request head"
    body = (b'{"error":"request_timeout","message":"the ' + what.encode() +
            b' stalled past its timeout; the connection is closed","request_id":""}\n')
    try:
        data = conn.send(h11.Response(status_code=408, headers=[
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return
    with trio.move_on_after(1.0):
        async with server.send_lock:
            try:
                await server.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


# -- pending connections --------------------------------------------------------------------

def _admit(limits: Limits, server: Any) -> None:
    """`server` has no whole request: count it, and make room past `max_pending`."""
    pending = limits.pending
    pending[server] = time.monotonic()
    pending.move_to_end(server)
    while len(pending) > limits.max_pending:
        oldest, since = next(iter(pending.items()))
        if time.monotonic() - since < PENDING_GRACE_S:
            break
        del pending[oldest]
        limits.evicted += 1
        _abort(oldest)


def _track(limits: Limits, server: Any, h11: Any) -> None:
    """After a read: a connection whose request is whole (or that upgraded) is no longer pending."""
    conn = _h11_connection(server, h11)
    if conn is None or conn.their_state not in (h11.IDLE, h11.SEND_BODY):
        limits.pending.pop(server, None)


def _abort(server: Any) -> None:
    """Close a connection's socket from outside its tasks: its blocked read ends at once."""
    stream = getattr(server, "stream", None)
    sock = getattr(stream, "socket", None) or getattr(getattr(stream, "transport_stream", None), "socket", None)
    if sock is not None:
        sock.close()


_last_contained = 0.0


def _contained(limits: Limits | None, exc: BaseException) -> None:
    global _last_contained
    if limits is not None:
        limits.contained += 1
    now = time.monotonic()
    if now - _last_contained >= 1.0:  # an attacker repeating it must not flood the log
        _last_contained = now
        logger.warning("a connection failed inside Hypercorn and was closed (%s: %s)", type(exc).__name__, exc,
                       exc_info=logger.isEnabledFor(logging.DEBUG))


# -- the app's receive queue ----------------------------------------------------------------

def _patch_spawn_app(task_group: Any) -> None:
    original_handle = task_group._handle

    async def spawn_app(self: Any, app: Any, config: Any, scope: Any, send: Any) -> Any:
        put, get = trio.open_memory_channel[Any](config.max_app_queue_size)

        async def app_then_close(*args: Any) -> None:
            try:
                await app(*args)
            finally:
                # before Hypercorn's own clean-up (which may itself queue a disconnect): a
                # reader blocked on a full queue wakes up, and later messages are dropped
                get.close()

        async def handle() -> None:
            await original_handle(app_then_close, config, scope, get.receive, send, trio.to_thread.run_sync,
                                  trio.from_thread.run)

        async def app_put(message: Any) -> None:
            try:
                await put.send(message)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the app has returned: nobody will read it

        self._nursery.start_soon(handle)
        app_put.gw_queue = put  # type: ignore[attr-defined]  # ws_detached.py checks it is empty
        return app_put

    task_group.TaskGroup.spawn_app = spawn_app


# -- WebSocket liveness -------------------------------------------------------------------------

def _patch_ws_stream(ws_stream: Any, data_event: Any, stream_closed: Any, close_connection: Any, ping: Any) -> None:
    """Every byte from the client after the handshake (a pong, a message, a close) is a sign of
    life; the ping task closes a client silent for `ws_idle_timeout_s` with 1011 and tells the
    app (its handler is cancelled: slot and subscription released). Browsers and client
    libraries answer pings by themselves, so a quiet client that is alive is never cut."""
    cls = ws_stream.WSStream
    original_handle, original_pings = cls.handle, cls._send_pings
    closed_state = ws_stream.ASGIWebsocketState.CLOSED

    async def handle(self: Any, event: Any) -> None:
        if isinstance(event, data_event):
            self._gw_last_rx = self.context.time()
        await original_handle(self, event)
        scope = getattr(self, "_gw_ping_scope", None)
        if self.closed and scope is not None:
            scope.cancel()  # end the ping task now, not at its next wake-up: the connection can go

    async def send_pings(self: Any) -> None:
        limits = getattr(self.config, "gateway", None)
        idle = limits.ws_idle_timeout_s if isinstance(limits, Limits) else None
        interval = self.config.websocket_ping_interval
        if not idle or not interval:
            await original_pings(self)
            return
        if getattr(self, "_gw_last_rx", None) is None:
            self._gw_last_rx = self.context.time()
        with trio.CancelScope() as self._gw_ping_scope:
            next_ping = self.context.time()
            while not self.closed:
                now = self.context.time()
                if now - self._gw_last_rx >= idle:
                    logger.info("closing a WebSocket client silent for %.1f s (ping timeout)", now - self._gw_last_rx)
                    self.state = closed_state
                    self._gw_ping_scope = None  # the close below must not cancel itself (see handle)
                    await self._send_wsproto_event(close_connection(code=CLOSE_PING_TIMEOUT, reason="ping timeout"))
                    await self.send(stream_closed(stream_id=self.stream_id))  # app disconnect + TCP close
                    return
                if now >= next_ping:
                    await self._send_wsproto_event(ping())
                    next_ping = now + interval
                await self.context.sleep(max(0.0, min(next_ping, self._gw_last_rx + idle) - now))

    cls.handle, cls._send_pings = handle, send_pings


# -- logging ------------------------------------------------------------------------------------

class _OncePerSecond(logging.Filter):
    """trio logs every failed accept (EMFILE/ENFILE/ENOBUFS/ENOMEM) with a traceback, ten a
    second while descriptors are out: keep one line a second, counting what was folded."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._folded = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last < 1.0:
            self._folded += 1
            return False
        self._last = now
        record.exc_info = None
        record.exc_text = None
        if self._folded:
            record.msg = f"{record.msg} ({self._folded} more since the last line)"
            self._folded = 0
        return True

"""WebSocket liveness: close a client that stops answering transport pings with 1011.

Why a patch: ASGI gives an application no view of WebSocket pings and pongs, and Hypercorn
0.18 sends a ping every `websocket_ping_interval` but ignores the pongs (wsproto `Pong`
events fall through `WSStream._handle_events`), so a peer that vanished without a FIN was
only noticed when TCP gave up, minutes later. An application-level rule ("no message for
30 s") would cut every ordinary client, since browsers and the seed examples never send.

What it does: every byte received from the client after the handshake (a pong, a message,
a close) counts as a sign of life. The ping task of each WebSocket pings every interval and,
once the client has been silent for the app's `WS_IDLE_TIMEOUT_S` (config key
`streams.ws_idle_timeout_s`, 30 s by default), sends close 1011 "ping timeout", tells the
app `websocket.disconnect` (its handler is cancelled: slot and subscription released) and
closes the TCP connection. A client that answers pings (browsers, `ws`, `websockets`,
trio-websocket do so by themselves) is never affected however quiet it is.

`install()` patches `hypercorn.protocol.ws_stream.WSStream` once per process; apps without
`WS_IDLE_TIMEOUT_S` in their config keep Hypercorn's own behaviour. If a future Hypercorn
lacks the hooks, it logs a warning and changes nothing (pings continue, no 1011).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

logger = logging.getLogger(__name__)

CONFIG_KEY = "WS_IDLE_TIMEOUT_S"
CLOSE_PING_TIMEOUT = 1011
_installed = False


def _idle_timeout(stream: Any) -> float | None:
    app = getattr(getattr(stream, "app", None), "app", None)  # hypercorn ASGIWrapper -> Quart app
    config = getattr(app, "config", None)
    value = config.get(CONFIG_KEY) if isinstance(config, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def install() -> bool:
    """Patch Hypercorn's WebSocket stream (idempotent). True if the patch is active."""
    global _installed
    if _installed:
        return True
    try:
        from hypercorn.protocol import ws_stream
        from hypercorn.protocol.events import Data, StreamClosed
        from wsproto.events import CloseConnection, Ping

        cls: Any = ws_stream.WSStream
        original_handle = cls.handle
        original_pings = cls._send_pings
        closed_state = ws_stream.ASGIWebsocketState.CLOSED
        if not callable(getattr(cls, "_send_wsproto_event", None)):
            raise AttributeError("WSStream._send_wsproto_event")
    except (ImportError, AttributeError) as exc:
        logger.warning("WebSocket ping timeout not enforced: this Hypercorn lacks %s", exc)
        return False

    async def handle(self: Any, event: Any) -> None:
        if isinstance(event, Data):
            self._gw_last_rx = self.context.time()
        await original_handle(self, event)
        scope = getattr(self, "_gw_ping_scope", None)
        if self.closed and scope is not None:
            scope.cancel()  # end the ping task now, not at its next wake-up: the connection can go

    async def send_pings(self: Any) -> None:
        idle = _idle_timeout(self)
        interval = self.config.websocket_ping_interval
        if idle is None or not interval:
            await original_pings(self)
            return
        now = self.context.time()
        if getattr(self, "_gw_last_rx", None) is None:
            self._gw_last_rx = now
        next_ping = now
        with trio.CancelScope() as self._gw_ping_scope:
            await _ping_loop(self, idle, interval, next_ping)

    async def _ping_loop(self: Any, idle: float, interval: float, next_ping: float) -> None:
        while not self.closed:
            now = self.context.time()
            if now - self._gw_last_rx >= idle:
                logger.info("closing a WebSocket client silent for %.1f s (ping timeout)", now - self._gw_last_rx)
                self.state = closed_state
                self._gw_ping_scope = None  # the close below must not cancel itself (see handle)
                await self._send_wsproto_event(CloseConnection(code=CLOSE_PING_TIMEOUT, reason="ping timeout"))
                await self.send(StreamClosed(stream_id=self.stream_id))  # app disconnect + TCP close
                return
            if now >= next_ping:
                await self._send_wsproto_event(Ping())
                next_ping = now + interval
            await self.context.sleep(max(0.0, min(next_ping, self._gw_last_rx + idle) - now))

    cls.handle = handle
    cls._send_pings = send_pings
    _installed = True
    return True

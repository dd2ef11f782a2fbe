"""Let a connection go as soon as its client has (a Hypercorn 0.17/0.18 trio fix).

Hypercorn's trio `TCPServer` runs an idle-timeout task while a connection has no request in
progress, and waits for it before closing the socket. When a client closes such a
connection (it connected and sent nothing, or part of a request), nothing stops that task:
the connection's tasks, and for a client that sent nothing its socket too, stayed for
`keep_alive_timeout` (75 s here). The same when a response ended after its client had left
(an SSE stream cut right after its status line): finishing the response restarted the idle
task. A client opening and closing connections in a loop could run the server out of
descriptors (`bench/cap_accounting.py`: 1,309 left open after 10,000 cycles). Once the read
loop has ended the connection is over: the idle task is stopped then and not started again,
so the connection closes as soon as its last response is done.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

_installed = False


def install() -> bool:
    """Patch Hypercorn's trio TCPServer once per process. True if the patch is active."""
    global _installed
    if _installed:
        return True
    try:
        from hypercorn.events import Updated
        from hypercorn.trio.tcp_server import TCPServer

        original_read, original_send = TCPServer._read_data, TCPServer.protocol_send
    except (ImportError, AttributeError) as exc:  # pragma: no cover - another Hypercorn layout
        logger.warning("closed idle connections linger until keep_alive_timeout: this Hypercorn lacks %s", exc)
        return False

    async def _read_data(self: Any) -> None:
        await original_read(self)  # returns once the client closed or the socket is gone
        self.gw_read_done = True
        idle = getattr(self, "idle_task", None)
        if idle is not None:
            await idle.stop()

    async def protocol_send(self: Any, event: Any) -> None:
        if isinstance(event, Updated) and event.idle and getattr(self, "gw_read_done", False):
            return  # no next request can come: do not wait keep_alive_timeout for one
        await original_send(self, event)

    TCPServer._read_data = _read_data  # type: ignore[method-assign]
    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    _installed = True
    return True

"""A WebSocket over plain ASGI: what the stream handlers need, and nothing in between.

Quart puts two tasks and a queue of its own between Hypercorn and a WebSocket handler
(one of them hands each message on after a signal). A message in that hand-off is in
neither queue, so a stream could not tell whether the client had something in flight,
which a live stream must know before it leaves Hypercorn (ws_detached.py). Served below
Quart (streams_asgi.py), the handler reads Hypercorn's queue itself: one task, one queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from .asgi_scope import Args, Headers


class Disconnected(Exception):
    """The client is gone (`websocket.disconnect`)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"disconnected ({code})")
        self.code = code


class AsgiWebSocket:
    def __init__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                 send: Callable[[Any], Awaitable[None]]) -> None:
        self.scope = scope
        self.receive_event, self.send_event = receive, send
        self.headers = Headers(scope["headers"])
        self.params: dict[str, list[str]] = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        self.args = Args(self.params)
        self.path: str = scope["path"]
        self.scheme: str = scope.get("scheme", "ws")
        self.host: str | None = self.headers.get("host")
        self.requested_subprotocols: list[str] = list(scope.get("subprotocols") or ())
        self.cookies = _cookies(self.headers.getlist("cookie"))
        self.closed = False

    async def accept(self, subprotocol: str | None = None) -> None:
        event = await self.receive_event()  # the server's `websocket.connect` comes first
        if event["type"] != "websocket.connect":
            raise Disconnected(1006)
        await self.send_event({"type": "websocket.accept", "subprotocol": subprotocol})

    async def send(self, text: str) -> None:
        if not self.closed:
            await self.send_event({"type": "websocket.send", "text": text})

    async def receive(self) -> str | bytes:
        event = await self.receive_event()
        if event["type"] == "websocket.receive":
            text = event.get("text")
            return text if text is not None else bytes(event.get("bytes") or b"")
        raise Disconnected(int(event.get("code", 1005)))

    async def close(self, code: int, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            await self.send_event({"type": "websocket.close", "code": code, "reason": reason})


def _cookies(headers: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        out.update({name: morsel.value for name, morsel in jar.items()})
    return out

"""The stream routes (SSE and WebSocket) and ingest, served by a small ASGI handler in front of Quart.

Why below Quart: a stream lives for hours and Quart's per-request machinery (request and
response objects, a nursery and two extra tasks) cost ~11 KiB per idle connection and CPU
on every write; for a WebSocket, Quart's hand-off task also hid messages in flight (see
asgi_websocket.py). Everything else (REST, ingest, dashboard, unknown paths) goes to Quart.

Per stream: parse the query into the same multi-dict the filters take, authenticate with
the same key forms, gate, validate (errors leave in the usual envelope with the request id
and CORS headers), take a cap slot, then send the body while one small task watches for
the client's disconnect. The slot is released in `finally`, however the stream ends.

Ingest (POST /v1/ingest/odds|pbp, ingest_http.py and ingest_keepalive.py) is here for
the same reason: a one-quote push cost more in Quart's machinery than in its commit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import aclosing
from typing import Any
from urllib.parse import parse_qs

import trio

from ..auth import ApiKey
from ..core.frames import dumps
from ..handle import Gateway
from ..streaming import StreamSession
from .asgi_scope import Args, Headers, encode_headers, request_id, send_json
from .asgi_websocket import AsgiWebSocket
from .common import ApiError, key_from, resolve_key
from .detached import detach
from .direct import CURRENT_CONNECTION, DirectWriter, plain_socket_fd
from .errors import access_log, cors_headers
from .ingest import KINDS as INGEST_KINDS
from .ingest_http import serve_ingest
from .sse import SSE_HEADERS, acquire_slot, drops_plan, odds_plan, pbp_plan, sse_body, steam_plan

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WS_ROUTE = re.compile(r"^(?:/v1)?/ws/(odds|live)/([^/]+)$")
WS_PATHS = ("/ws/odds/{sport_key}", "/v1/ws/odds/{sport_key}", "/ws/live/{sport_key}", "/v1/ws/live/{sport_key}")
ROUTES = (
    (re.compile(r"^/v1/sports/([^/]+)/live/sse$"), pbp_plan),
    (re.compile(r"^/v1/sse/(?:odds|hot)/([^/]+)$"), odds_plan),
    (re.compile(r"^/v1/odds-drop/([^/]+)$"), drops_plan),
    (re.compile(r"^/v1/steam/([^/]+)$"), steam_plan),
)


class StreamsApp:
    """ASGI app: the SSE routes here, everything else to `app`."""

    def __init__(self, gw: Gateway, app: Any) -> None:
        self.gw = gw
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send, *rest: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for pattern, plan in ROUTES:
                match = pattern.match(scope["path"])
                if match:
                    await self.stream(scope, receive, send, plan, match.group(1))
                    return
        if scope["type"] == "http" and scope["path"] in INGEST_KINDS:  # every method: 405 and OPTIONS too
            await serve_ingest(self.gw, scope, receive, send, INGEST_KINDS[scope["path"]])
            return
        elif scope["type"] == "websocket":
            match = WS_ROUTE.match(scope["path"])
            if match:
                from .ws import serve_socket

                await serve_socket(self.gw, AsgiWebSocket(scope, receive, send), match.group(2),
                                   live=match.group(1) == "live")
                return
        await self.app(scope, receive, send, *rest)

    async def stream(self, scope: Scope, receive: Receive, send: Send, plan_fn: Any, sport_key: str) -> None:
        gw, started = self.gw, time.perf_counter()
        headers = Headers(scope["headers"])
        query = scope["query_string"].decode("latin-1")
        params = parse_qs(query, keep_blank_values=True)
        rid = request_id(headers)
        extra = {"X-Request-ID": rid, **cors_headers(scope["path"], headers.get("origin"),
                                                      gw.config.server.cors_origins)}
        full_path = scope["path"] + ("?" + query if query else "")
        client = (scope.get("client") or ("-",))[0]
        key_name = "-"
        try:
            if gw.shutting_down:
                raise ApiError(503, "unavailable", "the gateway is shutting down", headers={"Retry-After": "5"})
            api_key: ApiKey = await resolve_key(gw, key_from(headers, Args(params)))
            key_name = api_key.name
            plan, named = plan_fn(gw, api_key, sport_key, params, headers.get("last-event-id"))
            slot = await acquire_slot(gw, api_key, plan)
        except ApiError as exc:
            await _send_error(send, exc, rid, extra)
            access_log(client, "GET", full_path, exc.status, started, key_name, rid)
            return
        handed_over = False  # the stream left this request (detached.py): it releases the slot
        try:
            access_log(client, "GET", full_path, 200, started, key_name, rid)
            http = scope.get("http_version", "1.1")
            conn = CURRENT_CONNECTION.get() if gw.config.streams.direct_writes and http in ("1.0", "1.1") else None
            if conn is not None and plain_socket_fd(conn) is None:
                conn = None  # TLS or an unknown server: stay on the normal path
            await send({"type": "http.response.start", "status": 200,
                        "headers": encode_headers({**SSE_HEADERS, **extra})})
            del headers, params, extra  # held for the stream's whole life otherwise
            async def idle() -> bool:  # only http.disconnect can arrive on a GET's receive()
                return bool((await receive())["type"] == "http.disconnect")

            inbox: Any = getattr(receive, "__self__", None)  # Hypercorn's queue to the app (hypercorn_patches.py)

            def left() -> bool:  # without waiting: has http.disconnect arrived?
                try:
                    while True:
                        if inbox.receive_nowait()["type"] == "http.disconnect":
                            return True
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    return False

            chunked = http == "1.1"

            def handover(session: StreamSession, writer: DirectWriter) -> bool:
                nonlocal handed_over
                handed_over = detach(gw, conn, session, writer, slot, chunked=chunked)
                return handed_over

            body = sse_body(gw, plan, slot, named=named, conn=conn, chunked=chunked, idle=idle,
                            left=left if isinstance(inbox, trio.MemoryReceiveChannel) else None,
                            handover=handover if gw.config.streams.detach_live_streams else None)
            async with aclosing(body) as chunks:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not handed_over:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not handed_over:
                slot.release()


async def _send_error(send: Send, exc: ApiError, rid: str, extra: dict[str, str]) -> None:
    await send_json(send, exc.status, dumps(exc.body(rid)).encode(), {**exc.headers, **extra})

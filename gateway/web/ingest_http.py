"""POST /v1/ingest/odds and /v1/ingest/pbp, served below Quart (issue 19).

Quart's per-request machinery (request and response objects, contexts, a nursery, hooks)
cost ~380 us of CPU per request, more than the commit of a one-quote push; this handler
does what those routes need on plain ASGI, with the same answers: the error envelope with
the request id, CORS headers, the key-redacting access log, the quota headers (of ingest's
own bucket), 503 while shutting down, 421 on a cluster edge, 413 for a body past
`max_body_bytes` (checked on Content-Length before reading, then as it arrives), OPTIONS
(CORS preflight) and 405 for other methods. Hypercorn still parses HTTP and enforces the
head and body timeouts (408).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from ..core.frames import dumps
from ..handle import Gateway
from ..writer import StoreUnavailable
from .asgi_scope import Args, Headers, encode_headers, request_id, send_json
from .common import ApiError, key_from, store_unavailable, writer_only_on
from .errors import access_log, cors_headers
from .ingest import admit, authorise, decode, ingest, quota

logger = logging.getLogger("gateway.web")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ClientLeft(Exception):
    """The client went away before its body was whole."""


async def serve_ingest(gw: Gateway, scope: MutableMapping[str, Any], receive: Receive, send: Send,
                       kind: str) -> None:
    started = time.perf_counter()
    headers = Headers(scope["headers"])
    query = scope["query_string"].decode("latin-1")
    args = Args(parse_qs(query, keep_blank_values=True))
    rid = request_id(headers)
    out = {"X-Request-ID": rid, **cors_headers(scope["path"], headers.get("origin"), gw.config.server.cors_origins)}
    method, path = scope["method"], scope["path"]
    key_name = "-"
    feeder = None
    status = 500
    try:
        if gw.shutting_down:
            raise ApiError(503, "unavailable", "the gateway is shutting down", headers={"Retry-After": "5"})
        if method == "OPTIONS":  # a CORS preflight: what Quart answered
            await send({"type": "http.response.start", "status": 200,
                        "headers": encode_headers({"Allow": "POST, OPTIONS", "Content-Length": "0", **out})})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            status = 200
            return
        if method != "POST":
            raise ApiError(405, "method_not_allowed", "The method is not allowed for the requested URL.")
        writer_only_on(gw)
        feeder = await authorise(gw, key_from(headers, args), args)
        key_name = feeder.api_key.name
        admit(gw, feeder)
        body = decode(await read_body(receive, headers, gw.config.server.max_body_bytes))
        report = await ingest(gw, feeder, kind, body)
        status = 200
        await send_json(send, 200, (dumps(report) + "\n").encode(), {**out, **quota(gw, feeder)})
    except ClientLeft:
        status = 499  # nothing to answer: logged as nginx does
    except Exception as exc:  # an ApiError, StoreUnavailable, or a bug (500, logged)
        error = _as_api_error(exc, method, path)
        status = error.status
        extra = quota(gw, feeder) if feeder is not None else {}
        await send_json(send, status, (dumps(error.body(rid)) + "\n").encode(), {**error.headers, **out, **extra})
    finally:
        client = (scope.get("client") or ("-",))[0]
        access_log(client, method, path + ("?" + query if query else ""), status, started, key_name, rid)


def _as_api_error(exc: BaseException, method: str, path: str) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreUnavailable):
        return store_unavailable(exc.reason)
    logger.exception("unhandled error on %s %s", method, path)
    return ApiError(500, "internal", "internal error; the request id is in the logs")


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The whole request body; 413 when it is (or says it will be) over `limit` bytes."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientLeft
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body too large (at most {limit} bytes: "
                    "[server] max_body_bytes)", limit=limit)

"""POST /v1/ingest/odds and /v1/ingest/pbp, served below Quart (issue 19).

Quart's per-request machinery (request and response objects, contexts, a nursery, hooks)
cost ~380 us of CPU per request, more than the commit of a one-quote push; this handler
does what those routes need on plain ASGI, with the same answers: the error envelope with
the request id, CORS headers, the key-redacting access log, the quota headers (of ingest's
own bucket), 503 while shutting down, 421 on a cluster edge, 413 for a body past
`max_body_bytes` (checked on Content-Length before reading, then as it arrives), OPTIONS
(CORS preflight) and 405 for other methods. Hypercorn still parses HTTP and enforces the
head and body timeouts (408). After a 200 on a plain HTTP/1.1 keep-alive connection, the
connection's next ingest POSTs are served without Hypercorn (ingest_keepalive.py).

`answer_post` is the route itself, whatever carries it: it returns the status, headers and
body; `serve_ingest` is its ASGI face.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import trio

from ..core.frames import dumps
from ..handle import Gateway
from ..writer import StoreUnavailable
from .asgi_scope import Args, Headers, encode_headers, request_id, send_json
from .common import ApiError, key_from, store_unavailable, writer_only_on
from .direct import CURRENT_CONNECTION
from .errors import access_log, cors_headers
from .ingest import admit, authorise, decode, ingest, quota

logger = logging.getLogger("gateway.web")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
BodyReader = Callable[[int], Awaitable[bytes]]  # (max bytes) -> the whole body; raises 413 ApiError or ClientLeft


class ClientLeft(Exception):
    """The client went away before its body was whole."""


async def serve_ingest(gw: Gateway, scope: MutableMapping[str, Any], receive: Receive, send: Send,
                       kind: str) -> None:
    started = time.perf_counter()
    headers = Headers(scope["headers"])
    query = scope["query_string"].decode("latin-1")
    method, path = scope["method"], scope["path"]
    rid = request_id(headers)
    out = {"X-Request-ID": rid, **cors_headers(path, headers.get("origin"), gw.config.server.cors_origins)}
    key_name = "-"
    if method == "OPTIONS" and not gw.shutting_down:  # a CORS preflight: what Quart answered
        await send({"type": "http.response.start", "status": 200,
                    "headers": encode_headers({"Allow": "POST, OPTIONS", "Content-Length": "0", **out})})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        status = 200
    elif method != "POST" and not gw.shutting_down:
        error = ApiError(405, "method_not_allowed", "The method is not allowed for the requested URL.")
        status = error.status
        await send_json(send, status, _body(error.body(rid)), {**error.headers, **out})
    else:
        whole = False

        async def read(limit: int) -> bytes:
            nonlocal whole
            data = await read_body(receive, headers, limit)
            whole = True
            return data

        status, answer, body, key_name = await answer_post(gw, kind, headers, query, rid, read)
        if status == 499:
            return _log(scope, method, path, query, status, started, key_name, rid)
        if not whole:  # refused before its body was read (401, 413, 429...)
            await _refuse(receive, send, status, body, {**answer, **out})
        else:
            if status == 200 and gw.config.streams.keep_alive_ingest:
                from .ingest_keepalive import take_over  # (it imports this module)

                # answered by the kept connection's task, which serves its next POSTs without
                # Hypercorn; Hypercorn's own answer below then meets a closed socket
                take_over(gw, CURRENT_CONNECTION.get(), status, {**answer, **out}, body)
            await send_json(send, status, body, {**answer, **out})
    _log(scope, method, path, query, status, started, key_name, rid)


async def _refuse(receive: Receive, send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Answer at once a request refused before its body was read (401, 413, 429...), with
    `Connection: close`, dropping what of its body still comes meanwhile: Hypercorn's reader
    hands the body to this app through a queue of a few chunks, and sending the answer waits
    for the connection's lingering close, which waits for that reader, which would wait for
    us to take a chunk (a client still sending a refused 4 MiB body waited a second, or for
    ever, for its 413). Hypercorn closes such a connection whatever the answer says; saying
    so tells the client not to send on it."""
    async def drop() -> None:
        while (await receive()).get("more_body", False):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drop)
        await send_json(send, status, body, {**headers, "Connection": "close"})
        nursery.cancel_scope.cancel()


def _log(scope: MutableMapping[str, Any], method: str, path: str, query: str, status: int, started: float,
         key_name: str, rid: str) -> None:
    client = (scope.get("client") or ("-",))[0]
    access_log(client, method, path + ("?" + query if query else ""), status, started, key_name, rid)


async def answer_post(gw: Gateway, kind: str, headers: Headers, query: str, rid: str,
                      read: BodyReader) -> tuple[int, dict[str, str], bytes, str]:
    """One ingest POST: (status, headers, JSON body, key name for the log); status 499 when
    the client left before its body was whole (nothing to answer)."""
    args = Args(parse_qs(query, keep_blank_values=True))
    key_name = "-"
    feeder = None
    try:
        if gw.shutting_down:
            raise ApiError(503, "unavailable", "the gateway is shutting down", headers={"Retry-After": "5"})
        writer_only_on(gw)
        feeder = await authorise(gw, key_from(headers, args), args)
        key_name = feeder.api_key.name
        admit(gw, feeder)
        body = decode(await read(gw.config.server.max_body_bytes))
        report = await ingest(gw, feeder, kind, body)
        return 200, quota(gw, feeder), _report(report), key_name
    except ClientLeft:
        return 499, {}, b"", key_name  # logged as nginx does
    except Exception as exc:  # an ApiError, StoreUnavailable, or a bug (500, logged)
        error = _as_api_error(exc, kind)
        extra = quota(gw, feeder) if feeder is not None else {}
        return error.status, {**error.headers, **extra}, _body(error.body(rid)), key_name


def _body(payload: dict[str, Any]) -> bytes:
    return (dumps(payload) + "\n").encode()  # as Quart's jsonify wrote it


def _report(report: dict[str, Any]) -> bytes:
    """`_body(report)`; without rejected rows (nearly always), without the JSON encoder."""
    if report["rejected_count"] or list(report) != _REPORT_KEYS:
        return _body(report)
    return b'{"accepted":%d,"rejected":[],"rejected_count":0}\n' % report["accepted"]


_REPORT_KEYS = ["accepted", "rejected", "rejected_count"]


def _as_api_error(exc: BaseException, kind: str) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreUnavailable):
        return store_unavailable(exc.reason)
    logger.exception("unhandled error on POST /v1/ingest/%s", kind)
    return ApiError(500, "internal", "internal error; the request id is in the logs")


async def read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The whole request body; 413 when it is (or says it will be) over `limit` bytes."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientLeft
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body too large (at most {limit} bytes: "
                    "[server] max_body_bytes)", limit=limit)

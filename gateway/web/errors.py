"""Request ids, the error envelope for every failure, CORS, and a key-redacting access log."""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote_plus

from quart import Response, g, has_request_context, has_websocket_context, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..writer import StoreUnavailable
from .asgi_scope import new_request_id
from .common import ApiError, quota_headers, store_unavailable

logger = logging.getLogger("gateway.access")
app_logger = logging.getLogger("gateway.web")

CORS_HEADERS = "X-API-Key, Authorization, Last-Event-ID, Content-Type, X-Request-ID"
# a parameter is secret when its name or value, percent-decoded, reads like a key's name
# (apiKey, api_key, APIKEY, Api-Key, ...) or holds a gateway key (gw_ + its token)
_KEY_NAME = re.compile(r"(?i)api[\s_.\-]*key")
_KEY_TOKEN = re.compile(r"gw_[A-Za-z0-9_\-]{6,}")


def _decoded(text: str) -> str:
    """Percent- and plus-decoded until stable (a client may encode twice: `%2561piKey`)."""
    for _ in range(3):
        plain = unquote_plus(text)
        if plain == text:
            break
        text = plain
    return text


def _redact_param(piece: str) -> str:
    plain = _decoded(piece)
    if not (_KEY_NAME.search(plain) or _KEY_TOKEN.search(plain)):
        return piece
    name, eq, _ = piece.partition("=")
    return f"{name}=***" if eq and not _KEY_TOKEN.search(_decoded(name)) else "***"


def redact(text: str) -> str:
    """A path and query string fit for a log line. Names are compared after percent-decoding,
    as the query parsers that accept keys decode them (`?%61piKey=gw_abc` is `apiKey`), so any
    parameter whose decoded name or value reads like a key name gets its value replaced:
    `apiKey=gw_abc` -> `apiKey=***`. A gateway key anywhere else (the path, a fragment sent
    by mistake) becomes `gw_***`."""
    path, sep, query = text.partition("?")
    if unquote_plus(path) != path and _KEY_TOKEN.search(_decoded(path)):
        path = _decoded(path)
    path = _KEY_TOKEN.sub("gw_***", path)
    if not sep:
        return path
    return path + "?" + "".join(_redact_param(p) for p in _PARAM_SPLIT.split(query))


_PARAM_SPLIT = re.compile(r"([&;])")


COOKIE_ONLY_PATHS = ("/dashboard", "/ws/live", "/v1/ws/live", "/v1/session")


def cors_headers(path: str, origin: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """CORS for key-authenticated routes; cookie-authenticated ones never allow other origins."""
    if not origin or path.startswith(COOKIE_ONLY_PATHS):
        return {}
    out = {"Access-Control-Allow-Headers": CORS_HEADERS, "Access-Control-Expose-Headers": "X-Request-ID, Retry-After",
           "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS"}
    if "*" in allowed:
        out["Access-Control-Allow-Origin"] = "*"
    elif origin in allowed:
        out["Access-Control-Allow-Origin"] = origin
        out["Vary"] = "Origin"
    return out


def access_log(remote: str | None, method: str, full_path: str, status: int, started: float, key_name: str,
               request_id: str) -> None:
    ms = (time.perf_counter() - started) * 1000
    logger.info('%s "%s %s" %s %.1fms key=%s rid=%s', remote, method, redact(full_path.rstrip("?")), status, ms,
                key_name, request_id)


def _error_response(exc: ApiError) -> Response:
    rid = getattr(g, "request_id", "") or new_request_id()
    resp = jsonify(exc.body(rid))
    resp.status_code = exc.status
    for k, v in exc.headers.items():
        resp.headers[k] = v
    return resp


def _target() -> tuple[str, str]:
    """(method, path) of the request or WebSocket being handled (a WebSocket to an unknown
    path has no `request`: reading it there raised, and the 404 became a 500)."""
    if has_websocket_context():
        return "GET", websocket.path
    if has_request_context():
        return request.method, request.path
    return "-", "-"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def install(app: QuartTrio) -> None:
    from ..handle import current_gateway

    @app.before_request
    async def start() -> None:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or new_request_id()
        g.started = time.perf_counter()
        if current_gateway().shutting_down:
            raise ApiError(503, "unavailable", "the gateway is shutting down", headers={"Retry-After": "5"})

    @app.after_request
    async def finish(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = getattr(g, "request_id", "")
        cors = cors_headers(request.path, request.headers.get("Origin"), current_gateway().config.server.cors_origins)
        resp.headers.update(cors)
        resp.headers.update(quota_headers(current_gateway(), request.path))
        access_log(request.remote_addr, request.method, request.full_path, resp.status_code,
                   getattr(g, "started", time.perf_counter()), getattr(g, "key_name", "-"),
                   getattr(g, "request_id", ""))
        return resp

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return _error_response(exc)

    @app.errorhandler(StoreUnavailable)
    async def on_store_unavailable(exc: StoreUnavailable) -> Response:  # a 200 always means stored
        return _error_response(store_unavailable(exc.reason))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        # a routing error (404, 405: what scanners send) is kept on the request, and its
        # traceback's frames hold the request: ~85 objects of cyclic garbage per request,
        # kept until a full GC pass (rare here by design). Nothing reads it after this.
        exc.__traceback__ = None
        if has_request_context():
            request.routing_exception = None
        code = exc.code or 500
        message = exc.description or exc.name
        if isinstance(exc, RequestEntityTooLarge):
            message = "request body too large"
        if code == 404:
            method, path = _target()
            message = f"no route for {method} {path}"
        return _error_response(ApiError(code, _HTTP_CODES.get(code, "http_error"), message))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        method, path = _target()
        app_logger.exception("unhandled error on %s %s", method, redact(path))
        return _error_response(ApiError(500, "internal", "internal error; the request id is in the logs"))



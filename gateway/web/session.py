"""Dashboard login: `POST/GET/DELETE /v1/session` and the `gw_session` cookie.

- `POST /v1/session` with `{"api_key": KEY}` (JSON, or a form field, or the X-API-Key /
  Bearer header) checks the key and sets the cookie: HttpOnly, SameSite=Strict, Path=/,
  Max-Age = `server.session_ttl_s`, Secure when the request came over https (directly, or
  per a trusted proxy's `X-Forwarded-Proto`: web/proxies.py). Answers `{"tier", "name",
  "expires_at"}` (ms). Any tier may log in; what the session may open is decided per route
  (`/ws/live` needs `odds_streams`).
- `GET /v1/session`: the current session, or 401 `missing_session` / `invalid_session`
  (bad signature, expired, or the key was revoked since login).
- `DELETE /v1/session`: clears the cookie (the token itself stays valid until it expires;
  revoking the key ends every session made from it).

Cookie-authenticated routes never serve foreign origins: a request that carries an Origin
header must be same-origin (scheme, host and port of the Host it came to), else 403
`forbidden_origin`. No CORS headers are added for these paths (web/errors.py).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, g, jsonify, request

from ..auth import ApiKey
from ..core import client_json
from ..handle import Gateway, current_gateway
from ..sessions import COOKIE_NAME, Session, make_session, read_session
from .common import ApiError, key_from, resolve_key

bp = Blueprint("session", __name__)

_DEFAULT_PORT = {"http": 80, "https": 443}


def effective_scheme(scheme: str) -> str:
    """`http` or `https` as the browser saw it (ws/wss map to http/https). A trusted proxy's
    `X-Forwarded-Proto` is already in the scope's scheme (web/proxies.py); no header is read here."""
    return "https" if scheme in ("https", "wss") else "http"


def same_origin(origin: str | None, host: str | None, scheme: str) -> bool:
    """Whether `origin` names exactly the origin the request was sent to."""
    if not origin or not host or origin == "null":
        return False
    try:
        o = urlsplit(origin)
        h = urlsplit(f"//{host}")
        o_port, h_port = o.port, h.port
    except ValueError:
        return False
    if o.scheme != scheme or not o.hostname or o.path not in ("", "/"):
        return False
    return (o.hostname, o_port or _DEFAULT_PORT.get(o.scheme)) == (
        (h.hostname or "").lower(), h_port or _DEFAULT_PORT.get(scheme))


def check_origin_if_present() -> None:
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, request.host,
                                              effective_scheme(request.scheme)):
        raise ApiError(403, "forbidden_origin", "session routes only answer pages served by this gateway")


async def active_key(gw: Gateway, key_id: int) -> ApiKey | None:
    """The key a session was made from, if it still exists and is not revoked."""
    return await gw.view.active_key(key_id)


async def session_key(gw: Gateway, token: str | None) -> tuple[Session, ApiKey] | None:
    """The valid session in a cookie value and its (still active) key, else None."""
    session = read_session(gw.session_secret, token, int(time.time()))
    if session is None:
        return None
    key = await active_key(gw, session.key_id)
    if key is None:
        return None
    return session, key


def _body(session: Session, key: ApiKey) -> dict[str, Any]:
    return {"tier": key.tier, "name": key.name, "expires_at": session.expires_at_ms}


async def _login_key() -> str | None:
    if request.is_json:
        raw = await request.get_data(as_text=False)
        try:  # no key is needed to get here: the body is parsed with the same bounds as everywhere
            data = client_json.loads(raw, strict_text=True) if raw.strip() else None
        except client_json.ClientJsonError as exc:
            raise ApiError(400, "invalid_body", f"body is {exc.message}") from None
        value = data.get("api_key") or data.get("apiKey") if isinstance(data, dict) else None
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "invalid_param", "api_key must be a string", param="api_key")
        if value:
            return value
    else:
        form = await request.form
        if form.get("api_key"):
            return str(form["api_key"])
    return key_from(request.headers, {})


@bp.post("/v1/session")
async def login() -> Response:
    check_origin_if_present()
    gw = current_gateway()
    api_key = await resolve_key(gw, await _login_key())
    g.key_name = api_key.name
    ttl = gw.config.server.session_ttl_s
    now = int(time.time())
    token = make_session(gw.session_secret, key_id=api_key.id, key_name=api_key.name, tier=api_key.tier,
                         now_s=now, ttl_s=ttl)
    session = read_session(gw.session_secret, token, now)
    assert session is not None
    resp = jsonify(_body(session, api_key))
    secure = effective_scheme(request.scheme) == "https"
    resp.set_cookie(COOKIE_NAME, token, max_age=ttl, path="/", httponly=True, samesite="Strict", secure=secure)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def request_session() -> tuple[Session, ApiKey]:
    """(session, key) behind this request's cookie, from the same origin; else ApiError 401/403."""
    check_origin_if_present()
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        raise ApiError(401, "missing_session", "not logged in: POST /v1/session with an api_key first")
    found = await session_key(current_gateway(), token)
    if found is None:
        raise ApiError(401, "invalid_session", "the session is invalid or expired (or its key was revoked); "
                       "log in again")
    g.key_name = found[1].name
    return found


@bp.get("/v1/session")
async def whoami() -> Response:
    found = await request_session()
    resp = jsonify(_body(*found))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.delete("/v1/session")
async def logout() -> Response:
    check_origin_if_present()
    resp = jsonify({"logged_out": True})
    secure = effective_scheme(request.scheme) == "https"
    resp.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict", secure=secure)
    return resp

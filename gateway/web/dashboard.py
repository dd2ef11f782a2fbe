"""The dashboard: a static page at `/dashboard` (files under `/dashboard/static/`) and the few
read-only JSON endpoints it polls, authenticated by the `gw_session` cookie.

Auth decision: the page sends the API key once, to `POST /v1/session`, and keeps nothing
(not in localStorage, not in sessionStorage, not in a JS variable after the request). Live
data comes over `/ws/live/{sport}` with the HttpOnly cookie; the three things the page
polls (sports, source health, upcoming events) are served here from the same cookie, with
the same data and rate limit as their `/v1` twins, instead of making the page hold a key
for the key-only REST routes. Like every cookie route these answer same-origin requests
only (an Origin header, when present, must be this gateway's) and never send CORS headers.

The page is plain HTML/CSS/JS with no build step and no external resources; responses carry
a strict Content-Security-Policy (scripts and styles from this origin only, no inline code).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from quart import Blueprint, Response, jsonify, redirect, request, send_from_directory

from ..auth import ApiKey
from ..core.filters import ParamError
from ..handle import current_gateway
from ..writer import wall_ms
from .common import ApiError, bad_param, check_sport
from .history import event_history, history_answer
from .session import effective_scheme, request_session

bp = Blueprint("dashboard", __name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPCOMING_LIMIT = 12


def _csp() -> str:
    scheme = "wss" if effective_scheme(request.scheme) == "https" else "ws"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {scheme}://{request.host}; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


def _harden(resp: Response, *, cache: str = "no-cache") -> Response:
    resp.headers["Content-Security-Policy"] = _csp()
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = cache
    resp.headers.pop("Expires", None)
    return resp


@bp.get("/dashboard")
async def page() -> Response:
    return _harden(await send_from_directory(STATIC_DIR, "index.html"))


@bp.get("/dashboard/")
async def page_slash() -> Any:
    return redirect("/dashboard")


@bp.get("/dashboard/static/<path:name>")
async def static_file(name: str) -> Response:
    return _harden(await send_from_directory(STATIC_DIR, name))  # safe_join: 404 outside the folder


async def _session() -> ApiKey:
    """The key behind the request's session cookie, rate limited like the key's REST calls."""
    gw = current_gateway()
    _, api_key = await request_session()
    tier = gw.config.tiers[api_key.tier]
    wait = gw.rate_limiter.check(api_key.id, tier.requests_per_minute, time.monotonic())
    if wait > 0:
        retry = max(1, int(wait + 0.999))
        raise ApiError(429, "rate_limit", f"too many requests for tier {api_key.tier} "
                       f"({tier.requests_per_minute}/min)", headers={"Retry-After": str(retry)},
                       retry_after_seconds=retry, limit=tier.requests_per_minute)
    return api_key


def _json(body: Any) -> Response:
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/dashboard/api/sports")
async def sports() -> Response:
    """Active sports, as `GET /v1/sports`."""
    await _session()
    gw = current_gateway()
    rows = [{"key": s.key, "group": s.group, "title": s.title, "description": s.description, "active": True,
             "has_outrights": s.has_outrights}
            for s in gw.universe.sports.values() if s.key in gw.universe.active_sports]
    rows.sort(key=lambda r: (str(r["group"]), str(r["key"])))
    return _json(rows)


@bp.get("/dashboard/api/sports/<sport_key>/source-health")
async def source_health(sport_key: str) -> Response:
    """As `GET /v1/sports/{sport}/live/source-health`."""
    await _session()
    gw = current_gateway()
    check_sport(gw, sport_key)
    rows = gw.view.freshness.rows(sport_key, wall_ms(), gw.config.sources.stale_after_s)
    return _json({"sport_key": sport_key, "count": len(rows), "results": rows,
                  "stale_after_s": gw.config.sources.stale_after_s})


@bp.get("/dashboard/api/sports/<sport_key>/upcoming")
async def upcoming(sport_key: str) -> Response:
    """The next events that have not started: `[{id, home_team, away_team, commence_time}]` (ms)."""
    await _session()
    gw = current_gateway()
    check_sport(gw, sport_key)
    now = wall_ms()
    evs = sorted((e for e in gw.board.events.values()
                  if e.sport_key == sport_key and e.commence_time_ms > now and e.id not in gw.view.final_matches),
                 key=lambda e: (e.commence_time_ms, e.id))
    return _json([{"id": e.id, "home_team": e.home_team, "away_team": e.away_team,
                   "commence_time": e.commence_time_ms} for e in evs[:UPCOMING_LIMIT]])


@bp.get("/dashboard/api/sports/<sport_key>/events/<event_id>/history")
async def event_line_history(sport_key: str, event_id: str) -> Response:
    """As `GET /v1/sports/{sport}/events/{event_id}/history` (the sparkline of a clicked cell)."""
    await _session()
    gw = current_gateway()
    ev, hist = await event_history(gw, sport_key, event_id)
    try:
        return _json(history_answer(gw, ev, hist, request.args.to_dict(flat=False), wall_ms()))
    except ParamError as exc:
        raise bad_param(exc) from None

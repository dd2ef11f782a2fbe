"""REST polling in The Odds API v4 shapes (also under /v4), health and readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import Blueprint, Response, jsonify

from ..core.filters import ParamError, bool_param, csv, int_param, one, parse_filter, parse_sports
from ..core.formats import convert_payload
from ..core.odds import format_price
from ..core.time import ms_from_iso
from ..core.toa import OddsQuery, event_json, event_matches, odds_events
from ..handle import current_gateway
from ..metrics import registry_for, render
from ..writer import LIVE_WINDOW_MS, wall_ms
from .common import ApiError, authenticate, bad_param, check_sport, params, time_range

bp = Blueprint("rest", __name__)

REGIONS = {"us", "us2", "uk", "eu", "fr", "au", "ca", "mx", "latam", "br", "asia"}
GAME_MARKETS = ("h2h", "spreads", "totals")


F = TypeVar("F", bound=Callable[..., Any])


def _both(rule: str, **kw: Any) -> Callable[[F], F]:
    """Register a route under /v1 and its The Odds API twin under /v4."""
    def deco(fn: F) -> F:
        bp.add_url_rule("/v1" + rule, f"v1{fn.__name__}", fn, **kw)
        bp.add_url_rule("/v4" + rule, f"v4{fn.__name__}", fn, **kw)
        return fn
    return deco


@bp.get("/healthz")
async def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
async def readyz() -> Any:
    ok, reason, fields = current_gateway().view.readiness()
    if not ok:
        raise ApiError(503, "unavailable", reason or "not ready", headers={"Retry-After": "5"}, **fields)
    return jsonify({"status": "ready", **fields})


@bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format. Unauthenticated, like /healthz: bind to localhost or firewall it."""
    gw = current_gateway()
    registry = gw.__dict__.setdefault("_metrics", registry_for(gw))
    return Response(render(registry), content_type="text/plain; version=0.0.4; charset=utf-8")


@_both("/sports")
async def sports() -> Response:
    await authenticate()
    gw = current_gateway()
    show_all = one(params(), "all") in ("true", "1")
    rows = [
        {"key": s.key, "group": s.group, "title": s.title, "description": s.description,
         "active": s.key in gw.universe.active_sports, "has_outrights": s.has_outrights}
        for s in gw.universe.sports.values()
        if show_all or s.key in gw.universe.active_sports
    ]
    rows.sort(key=lambda r: (r["group"], r["key"]))
    return jsonify(rows)


def _odds_query(sport_key: str, *, default_format: str, markets_default: str = "h2h") -> OddsQuery:
    gw = current_gateway()
    p = params()
    try:
        regions = csv(p, "regions")
        if regions and (bad := [r for r in regions if r not in REGIONS]):
            raise ParamError("regions", f"unknown region: {', '.join(bad)}")
        markets = csv(p, "markets") or [markets_default]
        if bad := [m for m in markets if m not in GAME_MARKETS]:
            raise ParamError("markets", f"not a game market: {', '.join(bad)} (use h2h, spreads, totals; "
                             "player markets are under /props)")
        fmt = one(p, "oddsFormat") or default_format
        if fmt not in ("decimal", "american"):
            raise ParamError("oddsFormat", f"must be decimal or american, got {fmt!r}")
        date_format = one(p, "dateFormat") or "iso"
        if date_format not in ("iso", "unix"):
            raise ParamError("dateFormat", f"must be iso or unix, got {date_format!r}")
        books = csv(p, "bookmakers")
        if books and (bad := [b for b in books if b not in gw.universe.coverage]):
            raise ParamError("bookmakers", f"unknown bookmaker: {', '.join(bad)}")
        event_ids = csv(p, "eventIds")
        return OddsQuery(
            sport_key=sport_key, markets=markets, bookmakers=books, event_ids=event_ids,
            commence_from_ms=_time_param(p, "commenceTimeFrom"), commence_to_ms=_time_param(p, "commenceTimeTo"),
            odds_format=fmt, date_format=date_format, include_suspended=bool_param(p, "includeSuspended", False),
        )
    except ParamError as exc:
        raise bad_param(exc) from None


def _time_param(p: Any, name: str) -> int | None:
    text = one(p, name)
    if not text:
        return None
    try:
        return ms_from_iso(text)
    except ValueError:
        raise ParamError(name, f"must be an ISO-8601 time such as 2026-05-12T22:30:00Z, got {text!r}") from None


@_both("/sports/<sport_key>/events")
async def events(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    q = _odds_query(sport_key, default_format="decimal")
    title = gw.universe.sports[sport_key].title
    evs = sorted((e for e in gw.board.events.values() if event_matches(e, q)),
                 key=lambda e: (e.commence_time_ms, e.id))
    return jsonify([event_json(e, title, q.date_format) for e in evs])


@_both("/sports/<sport_key>/odds")
async def odds(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    q = _odds_query(sport_key, default_format="decimal")
    body = odds_events(gw.board, q, gw.universe.sports[sport_key].title, gw.universe.book_title)
    return jsonify(body)


@bp.get("/v1/sports/<sport_key>/live")
async def live(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    q = _odds_query(sport_key, default_format="american")
    now = wall_ms()
    final = gw.view.final_matches

    def in_play(ev: Any) -> bool:
        return bool(ev.commence_time_ms <= now < ev.commence_time_ms + LIVE_WINDOW_MS and ev.id not in final)

    body = odds_events(gw.board, q, gw.universe.sports[sport_key].title, gw.universe.book_title, in_play)
    return jsonify(body)


@bp.get("/v1/sports/<sport_key>/props")
async def props(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    p = params()
    try:
        markets = csv(p, "markets")
        if markets and (bad := [m for m in markets if m not in gw.universe.markets or m in GAME_MARKETS]):
            raise ParamError("markets", f"unknown player market: {', '.join(bad)}")
        books = csv(p, "bookmakers")
        if books and (bad := [b for b in books if b not in gw.universe.coverage]):
            raise ParamError("bookmakers", f"unknown bookmaker: {', '.join(bad)}")
        fmt = one(p, "oddsFormat") or "american"
        if fmt not in ("decimal", "american"):
            raise ParamError("oddsFormat", f"must be decimal or american, got {fmt!r}")
        limit = int_param(p, "limit", 5000, 1, 10000)
        offset = int_param(p, "offset", 0, 0, 10000)
    except ParamError as exc:
        raise bad_param(exc) from None
    player = (one(p, "player") or "").lower()
    event_id = one(p, "eventId", "event_id")
    rows = []
    for key in gw.board.row_keys():
        ev_id, book, kind, who, market = key
        if kind != "prop" or gw.board.events[ev_id].sport_key != sport_key:
            continue
        if (markets and market not in markets) or (books and book not in books) or (event_id and ev_id != event_id):
            continue
        if player and player not in who.lower():
            continue
        row = gw.board.row(key)
        if fmt == "decimal":
            for f in ("over_price", "under_price"):
                if row[f] is not None:
                    row[f] = format_price(row[f], "decimal")  # type: ignore[arg-type]
        rows.append(row)
    rows.sort(key=lambda r: (str(r["event_id"]), str(r["player"]), str(r["market_key"]), str(r["bookmaker"])))
    page = rows[offset:offset + limit]
    resp = jsonify(page)
    resp.headers.update({"x-result-row-count": str(len(rows)), "x-result-limit": str(limit),
                         "x-result-offset": str(offset),
                         "x-result-has-more": "true" if offset + limit < len(rows) else "false"})
    return resp


@bp.get("/v1/sports/<sport_key>/live/points")
async def live_points(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    match_id = one(params(), "match_id", "event_id")
    rows = await gw.view.live_state([sport_key], match_id)
    return jsonify(rows)


@bp.get("/v1/sports/<sport_key>/live/source-health")
async def source_health(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    check_sport(gw, sport_key)
    try:
        degraded = bool_param(params(), "degraded_only", False)
    except ParamError as exc:
        raise bad_param(exc) from None
    rows = gw.view.freshness.rows(sport_key, wall_ms(), gw.config.sources.stale_after_s)
    if degraded:
        rows = [r for r in rows if r["status"] == "stale"]
    return jsonify({"sport_key": sport_key, "count": len(rows), "results": rows})


@bp.get("/v1/odds-drop/<sport_key>/recent")
async def recent_drops(sport_key: str) -> Response:
    await authenticate()
    gw = current_gateway()
    p = params()
    catalog = gw.universe.catalog()
    try:
        sports = parse_sports(p, sport_key, catalog)
        flt = parse_filter(p, catalog, drops=True)
        limit = int_param(p, "limit", 100, 1, 1000)
        now = wall_ms()
        window_h = gw.config.database.retention_hours
        since, until = time_range(p, oldest_ms=now - int(window_h * 3_600_000), now_ms=now,
                                  what=f"the drop log's retention ([database] retention_hours = {window_h:g})")
    except ParamError as exc:
        raise bad_param(exc) from None
    scan = max(limit * 20, gw.config.streams.recent_drops)
    out = await gw.view.recent_drops(sports, flt, limit=limit, scan=scan, since_ms=since, until_ms=until)
    if flt.odds_format != "american":
        out = [convert_payload(d, flt.odds_format) for d in out]
    return jsonify(out)



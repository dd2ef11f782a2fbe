"""Line history, the closing line and CLV (issue 15.2): REST routes over history_store.py.

- `GET /v1/sports/{sport}/events/{event_id}/history`: every price change per (book, market,
  outcome, player, point) with its time, plus `open`, `current` and `close` (the last price
  before `commence_time`, once the event has started). Params `bookmakers`, `markets`,
  `oddsFormat` (american default, decimal, probability), `from`, `to` (unix ms or ISO-8601).
- `GET /v1/sports/{sport}/events/{event_id}/clv`: a bet's closing-line value against its
  book's close and a reference book's (`reference`, pinnacle by default).
An unknown event (or one of another sport) is a 404; `from` after `to`, or before the
history window (`[database] history_days`), is a 400 naming the parameter.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from quart import Blueprint, Response, jsonify

from ..core.filters import ParamError, Params, csv, one
from ..core.history import closing_price, clv, series_json
from ..core.model import MARKET_OUTCOMES, PROP_OUTCOMES
from ..core.odds import ODDS_FORMATS, OddsError, to_american
from ..core.time import iso_from_ms
from ..handle import Gateway, current_gateway
from ..history_store import EventHistory, read_event
from ..writer import wall_ms
from .common import ApiError, authenticate, bad_param, check_sport, params, time_param, time_range

bp = Blueprint("history", __name__)
DAY_MS = 86_400_000
MAX_CHANGES = 100_000  # per answer: past it, narrow from/to, bookmakers or markets


async def event_history(gw: Gateway, sport_key: str, event_id: str) -> tuple[Any, EventHistory | None]:
    """The event (board info) and its stored history; 404 for an event this sport never had."""
    check_sport(gw, sport_key)
    ev = gw.board.events.get(event_id)
    if ev is None or ev.sport_key != sport_key:
        raise ApiError(404, "not_found", f"no event {event_id[:80]!r} in {sport_key}", param="event_id")
    return ev, await gw.store.read(partial(read_event, event_id=event_id))


def history_answer(gw: Gateway, ev: Any, hist: EventHistory | None, p: Params, now: int) -> dict[str, Any]:
    """The history answer for one event (shared by the REST route and the dashboard's)."""
    days = gw.config.database.history_days
    oldest = now - int(days * DAY_MS)
    since, until = time_range(p, oldest_ms=oldest, now_ms=now,
                              what=f"the line history window ([database] history_days = {days:g})")
    books = _known(csv(p, "bookmakers"), gw.universe.coverage, "bookmakers", "bookmaker")
    markets = _known(csv(p, "markets"), gw.universe.markets, "markets", "market")
    fmt = one(p, "oddsFormat", "odds_format") or "american"
    if fmt not in ODDS_FORMATS:
        raise ParamError("oddsFormat", f"must be american, decimal or probability, got {fmt!r}")
    lo, hi = since if since is not None else oldest, until if until is not None else now
    series = [s for s in (hist.series if hist is not None else [])
              if (books is None or s.bookmaker in books) and (markets is None or s.market_key in markets)]
    out = [series_json(s, commence_ms=ev.commence_time_ms, now_ms=now, from_ms=lo, to_ms=hi, odds_format=fmt)
           for s in series]
    total = sum(len(s["changes"]) for s in out)
    if total > MAX_CHANGES:
        raise ParamError("from", f"{total} changes in this range, more than {MAX_CHANGES} per answer: narrow from/to, "
                         "bookmakers or markets")
    return {"event_id": ev.id, "sport_key": ev.sport_key, "home_team": ev.home_team, "away_team": ev.away_team,
            "commence_time": iso_from_ms(ev.commence_time_ms), "started": now >= ev.commence_time_ms,
            "odds_format": fmt, "from": lo, "to": hi, "history_days": days,
            "count": sum(len(s["changes"]) for s in out), "series": out}


def _known(values: list[str] | None, universe: Any, param: str, what: str) -> set[str] | None:
    if values is None:
        return None
    if bad := [v for v in values if v not in universe]:
        raise ParamError(param, f"unknown {what}: {', '.join(bad)}")
    return set(values)


@bp.get("/v1/sports/<sport_key>/events/<event_id>/history")
async def history(sport_key: str, event_id: str) -> Response:
    await authenticate()
    gw = current_gateway()
    ev, hist = await event_history(gw, sport_key, event_id)
    try:
        return jsonify(history_answer(gw, ev, hist, params(), wall_ms()))
    except ParamError as exc:
        raise bad_param(exc) from None


@bp.get("/v1/sports/<sport_key>/events/<event_id>/clv")
async def closing_line_value(sport_key: str, event_id: str) -> Response:
    await authenticate()
    gw = current_gateway()
    ev, hist = await event_history(gw, sport_key, event_id)
    try:
        bet = _bet(gw, params(), ev.commence_time_ms)
    except ParamError as exc:
        raise bad_param(exc) from None
    now = wall_ms()
    started = now >= ev.commence_time_ms
    until = ev.commence_time_ms if started else now + 1  # before the start: the current line, provisional
    series = hist.series if hist is not None else []

    def versus(book: str) -> dict[str, Any] | None:
        found = closing_price(series, bookmaker=book, market_key=bet["market_key"], outcome=bet["outcome"],
                              player=bet["player"], point=bet["point"], commence_ms=until)
        if found is None:
            return None
        s, (ms, price) = found
        return {"bookmaker": book, "close_point": s.point, "closed_at": ms, **clv(bet["price"], price)}

    return jsonify({"event_id": ev.id, "sport_key": ev.sport_key, "commence_time": iso_from_ms(ev.commence_time_ms),
                    "started": started, "provisional": not started, "bet": bet, "book": versus(bet["bookmaker"]),
                    "reference": versus(bet["reference"])})


def _bet(gw: Gateway, p: Params, commence_ms: int) -> dict[str, Any]:
    def required(name: str, *aliases: str) -> str:
        value = one(p, name, *aliases)
        if not value:
            raise ParamError(name, "is required")
        return value

    book = required("bookmaker")
    reference = one(p, "reference") or "pinnacle"
    for name, value in (("bookmaker", book), ("reference", reference)):
        if value not in gw.universe.coverage:
            raise ParamError(name, f"unknown bookmaker: {value}")
    market = required("market", "market_key")
    if market not in gw.universe.markets:
        raise ParamError("market", f"unknown market: {market}")
    outcome = required("outcome")
    allowed = MARKET_OUTCOMES.get(market, PROP_OUTCOMES)
    if outcome not in allowed:
        raise ParamError("outcome", f"{outcome!r} is not an outcome of {market} (use {', '.join(allowed)})")
    fmt = one(p, "oddsFormat", "odds_format") or "american"
    if fmt not in ODDS_FORMATS:
        raise ParamError("oddsFormat", f"must be american, decimal or probability, got {fmt!r}")
    text = required("price")
    try:
        price = to_american(float(text), fmt)
    except ValueError as exc:  # OddsError, or not a number
        why = str(exc) if isinstance(exc, OddsError) else "not a number"
        raise ParamError("price", f"{text[:40]!r} as {fmt}: {why}") from None
    point_text = one(p, "point") or ""
    try:
        point = float(point_text) if point_text else None
    except ValueError:
        raise ParamError("point", f"must be a number, got {point_text[:40]!r}") from None
    at = time_param(p, "time")
    if at is not None and at >= commence_ms:
        raise ParamError("time", "the bet was placed after the event started: there is no closing line to beat")
    return {"bookmaker": book, "market_key": market, "outcome": outcome, "point": point,
            "player": one(p, "player"), "price": price, "time": at, "reference": reference}

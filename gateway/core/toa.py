"""The Odds API v4 response shapes, built from the board (pure).

`/sports/{sport}/odds` returns events with bookmakers -> markets -> outcomes, where an
outcome's `name` is a team (h2h, spreads), `Draw`, or `Over`/`Under` (totals).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from .board import Board, EventInfo
from .model import Quote
from .odds import format_price
from .time import iso_from_ms


@dataclass(frozen=True, slots=True)
class OddsQuery:
    sport_key: str
    markets: Collection[str] = ("h2h",)
    bookmakers: Collection[str] | None = None
    event_ids: Collection[str] | None = None
    commence_from_ms: int | None = None
    commence_to_ms: int | None = None
    odds_format: str = "decimal"
    date_format: str = "iso"
    include_suspended: bool = False  # suspended/closed prices are left out unless asked for


def event_matches(ev: EventInfo, q: OddsQuery) -> bool:
    if ev.sport_key != q.sport_key:
        return False
    if q.event_ids is not None and ev.id not in q.event_ids:
        return False
    if q.commence_from_ms is not None and ev.commence_time_ms < q.commence_from_ms:
        return False
    return not (q.commence_to_ms is not None and ev.commence_time_ms > q.commence_to_ms)


def event_json(ev: EventInfo, sport_title: str, date_format: str = "iso") -> dict[str, Any]:
    return {
        "id": ev.id,
        "sport_key": ev.sport_key,
        "sport_title": sport_title,
        "commence_time": _date(ev.commence_time_ms, date_format),
        "home_team": ev.home_team,
        "away_team": ev.away_team,
    }


def _date(ms: int, date_format: str) -> str | int:
    return ms // 1000 if date_format == "unix" else iso_from_ms(ms)


def _outcome_name(q: Quote, ev: EventInfo) -> str:
    return {"home": ev.home_team, "away": ev.away_team, "draw": "Draw", "over": "Over", "under": "Under"}[q.outcome]


def odds_events(board: Board, q: OddsQuery, sport_title: str, book_title: Callable[[str], str],
                include: Callable[[EventInfo], bool] = lambda ev: True) -> list[dict[str, Any]]:
    """Events of one sport with their bookmakers' prices in TOA v4 shape."""
    by_event: dict[str, dict[str, dict[str, list[Quote]]]] = {}
    for key in board.row_keys():
        event_id, bookmaker, kind, _player, _market = key
        if kind != "game" or (q.bookmakers is not None and bookmaker not in q.bookmakers):
            continue
        ev = board.events[event_id]
        if not event_matches(ev, q) or not include(ev):
            continue
        for (market, _outcome), quote in board.cells(key).items():
            if market in q.markets and (q.include_suspended or quote.status == "open"):
                by_event.setdefault(event_id, {}).setdefault(bookmaker, {}).setdefault(market, []).append(quote)
    out = []
    for event_id, books in by_event.items():
        ev = board.events[event_id]
        body = event_json(ev, sport_title, q.date_format)
        body["bookmakers"] = [
            _bookmaker(book, markets, ev, q, book_title(book)) for book, markets in sorted(books.items())
        ]
        out.append(body)
    out.sort(key=lambda e: (board.events[e["id"]].commence_time_ms, e["id"]))
    return out


_ORDER = {"home": 0, "away": 1, "draw": 2, "over": 0, "under": 1}


def _bookmaker(book: str, markets: dict[str, list[Quote]], ev: EventInfo, q: OddsQuery, title: str) -> dict[str, Any]:
    last = max(x.observed_at_ms for quotes in markets.values() for x in quotes)
    out_markets = []
    for market in sorted(markets, key=lambda m: ("h2h", "spreads", "totals").index(m)):
        quotes = sorted(markets[market], key=lambda x: _ORDER[x.outcome])
        outcomes: list[dict[str, Any]] = []
        for x in quotes:
            o: dict[str, Any] = {"name": _outcome_name(x, ev), "price": format_price(x.price, q.odds_format)}
            if x.point is not None:
                o["point"] = x.point
            if x.status != "open":  # only with includeSuspended=true
                o["status"] = x.status
            outcomes.append(o)
        out_markets.append({
            "key": market,
            "last_update": _date(max(x.observed_at_ms for x in quotes), q.date_format),
            "outcomes": outcomes,
        })
    return {"key": book, "title": title, "last_update": _date(last, q.date_format), "markets": out_markets}

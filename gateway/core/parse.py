"""Ingest parsing: flat quotes, The Odds API v4 event lists and PBP rows -> records.

Pure: standard library only and no clock (callers pass `now_ms`, the arrival time used for
defaults). Every rejection is a RowError whose message names the field and says why, so a
pushing client can fix its payload from the error alone (CONTRACT.md section 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import fields
from .fields import RowError
from .model import GAME_MARKETS, MARKET_OUTCOMES, NO_PRICE, OPEN, PROP_OUTCOMES, STATUSES, Play, Quote
from .odds import MAX_AMERICAN, OddsError, to_american
from .time import iso_from_ms

__all__ = ["ODDS_FORMATS", "RowError", "count_toa_rows", "parse_flat_quote", "parse_pbp_row", "parse_toa_events",
           "play_to_row", "quote_to_flat"]
ODDS_FORMATS = ("american", "decimal", "probability")


# --- flat quotes ---------------------------------------------------------------------


def _market_and_outcome(row: Mapping[str, Any]) -> tuple[str, str]:
    market = fields.key(row, "market_key")
    outcome = fields.req_text(row, "outcome")
    allowed = MARKET_OUTCOMES.get(market, PROP_OUTCOMES)
    if outcome not in allowed:
        raise RowError(f"outcome: {outcome!r} is not valid for market {market} (use {', '.join(allowed)})")
    return market, outcome


def _point_and_player(row: Mapping[str, Any], market: str, *, priced: bool = True) -> tuple[float | None, str | None]:
    point = fields.number(row, "point")
    player = fields.text(row, "player")
    if market == "h2h":
        if point is not None:
            raise RowError("point: must be null for market h2h")
    elif point is None and priced:
        raise RowError(f"point: required for market {market}")
    if market in GAME_MARKETS:
        if player is not None:
            raise RowError(f"player: must be null for game market {market}")
    elif player is None:
        raise RowError(f"player: required for prop market {market}")
    return point, player


def _price(row: Mapping[str, Any]) -> int:
    fmt = fields.text(row, "odds_format") or "american"
    if fmt not in ODDS_FORMATS:
        raise RowError(f"odds_format: {fmt!r} is not one of {', '.join(ODDS_FORMATS)}")
    value = row.get("price")
    if value is None:
        raise RowError("price: required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(f"price: expected a number, got {type(value).__name__}")
    if fields.is_int(value) and abs(value) > MAX_AMERICAN:  # a huge int would overflow the float maths
        raise RowError(f"price: must be within +-{MAX_AMERICAN} in any format")
    try:
        return to_american(value, fmt)
    except OddsError as exc:
        raise RowError(f"price: {value!r} as {fmt}: {exc}") from None


def _status(row: Mapping[str, Any]) -> tuple[str, str | None]:
    """(status, reason): `status` open (default), suspended or closed; `reason` only with a status."""
    status = row.get("status")
    if status is None:
        status = OPEN
    elif status not in STATUSES:
        shown = repr(status[:40]) if isinstance(status, str) else type(status).__name__
        raise RowError(f"status: {shown} must be open, suspended or closed")
    reason = fields.text(row, "reason")
    return status, reason


def parse_flat_quote(row: object, *, now_ms: int) -> Quote:
    """One flat quote (CONTRACT.md 7) -> Quote. Unknown fields are ignored. A quote whose
    `status` is suspended or closed may leave out `price` (and `point`): the market keeps its
    last price, in that state (the price is then NO_PRICE, filled in by the writer)."""
    r = fields.mapping(row, "row")
    home, away = fields.req_text(r, "home_team"), fields.req_text(r, "away_team")
    if home == away:
        raise RowError("away_team: must differ from home_team")
    market, outcome = _market_and_outcome(r)
    status, reason = _status(r)
    priced = status == OPEN or r.get("price") is not None
    point, player = _point_and_player(r, market, priced=priced)
    return Quote(
        sport_key=fields.key(r, "sport_key"),
        event_id=fields.req_text(r, "event_id"),
        home_team=home,
        away_team=away,
        commence_time_ms=fields.time_ms(r, "commence_time"),
        bookmaker=fields.key(r, "bookmaker"),
        market_key=market,
        outcome=outcome,
        price=_price(r) if priced else NO_PRICE,
        point=point,
        player=player,
        observed_at_ms=fields.ms(r, "observed_at_ms", now_ms),
        status=status,
        reason=reason,
    )


def quote_to_flat(q: Quote) -> dict[str, Any]:
    """Quote -> flat quote; `parse_flat_quote(quote_to_flat(q), now_ms=...) == q`."""
    # ISO keeps whole seconds only; a commence time with milliseconds stays an int so the
    # round trip is exact
    commence: str | int = iso_from_ms(q.commence_time_ms) if q.commence_time_ms % 1000 == 0 else q.commence_time_ms
    flat: dict[str, Any] = {
        "sport_key": q.sport_key,
        "event_id": q.event_id,
        "home_team": q.home_team,
        "away_team": q.away_team,
        "commence_time": commence,
        "bookmaker": q.bookmaker,
        "market_key": q.market_key,
        "outcome": q.outcome,
        "price": q.price,
        "point": q.point,
        "player": q.player,
        "odds_format": "american",
        "observed_at_ms": q.observed_at_ms,
    }
    if q.status != OPEN:  # open is the default: recordings of open prices keep their shape
        flat["status"] = q.status
        if q.price == NO_PRICE:
            flat["price"] = None
        if q.reason is not None:
            flat["reason"] = q.reason
    return flat


# --- The Odds API v4 event lists ------------------------------------------------------


def _toa_outcome(name: str, market: str, home: str, away: str) -> str:
    """Map a TOA outcome name to home/away/draw/over/under, or raise with the reason."""
    folded = name.strip().casefold()
    if market in ("h2h", "spreads"):
        if name == home or folded == home.casefold():
            return "home"
        if name == away or folded == away.casefold():
            return "away"
        if market == "h2h" and folded == "draw":
            return "draw"
        raise RowError("name matches neither team")
    if folded in ("over", "under"):
        return folded
    raise RowError("name must be Over or Under")


class _Event:
    """The event-level fields of one TOA event, validated once for all its rows."""

    def __init__(self, ev: Mapping[str, Any]) -> None:
        self.id = fields.req_text(ev, "id")
        self.sport_key = fields.key(ev, "sport_key")
        self.home = fields.req_text(ev, "home_team")
        self.away = fields.req_text(ev, "away_team")
        self.commence_ms = fields.time_ms(ev, "commence_time", int_unit_ms=False)


def _last_update(obj: Mapping[str, Any], fallback: int) -> int:
    return fallback if obj.get("last_update") is None else fields.time_ms(obj, "last_update", int_unit_ms=False)


def _toa_row(ev: _Event, book: str, market: str, out: Mapping[str, Any], fmt: str, seen_ms: int) -> dict[str, Any]:
    """One TOA outcome as a flat quote, so flat-quote validation covers it too."""
    name = fields.req_text(out, "name")
    price = out.get("price")
    # TOA sends decimal by default; an |price| >= 100 can only be American
    if isinstance(price, int | float) and not isinstance(price, bool) and abs(price) >= 100:
        fmt = "american"
    return {
        "sport_key": ev.sport_key, "event_id": ev.id, "home_team": ev.home, "away_team": ev.away,
        "commence_time": ev.commence_ms, "bookmaker": book, "market_key": market,
        "outcome": _toa_outcome(name, market, ev.home, ev.away), "price": price, "point": out.get("point"),
        "player": out.get("description") if market not in GAME_MARKETS else None,
        "odds_format": fmt, "observed_at_ms": seen_ms,
    }


def _toa_market(ev: _Event, book: str, raw: object, book_ms: int, fmt: str, now_ms: int,
                where: str) -> tuple[list[Quote], list[str]]:
    """One bookmaker market: its good quotes and a reason per bad outcome."""
    mmap = fields.mapping(raw, "market")
    market = fields.key(mmap, "key")
    seen_ms = _last_update(mmap, book_ms)
    quotes: list[Quote] = []
    errors: list[str] = []
    for oraw in fields.list_of(mmap.get("outcomes", []), "outcomes"):
        label = oraw.get("name") if isinstance(oraw, dict) else oraw
        try:
            flat = _toa_row(ev, book, market, fields.mapping(oraw, "outcome"), fmt, seen_ms)
            quotes.append(parse_flat_quote(flat, now_ms=now_ms))
        except RowError as exc:
            errors.append(f"{where} market {market} outcome {label!r}: {exc}")
    return quotes, errors


def _toa_event(i: int, raw: object, fmt: str, now_ms: int) -> tuple[list[Quote], list[tuple[int, str]]]:
    quotes: list[Quote] = []
    errors: list[tuple[int, str]] = []
    try:
        evmap = fields.mapping(raw, "event")
        ev = _Event(evmap)
        books = fields.list_of(evmap.get("bookmakers", []), "bookmakers")
    except RowError as exc:
        return [], [(i, f"event {i}: {exc}")]
    for j, braw in enumerate(books):
        where = f"event {i} bookmaker #{j}"
        try:
            bmap = fields.mapping(braw, "bookmaker")
            book = fields.key(bmap, "key")
            where = f"event {i} bookmaker {book}"
            book_ms = _last_update(bmap, now_ms)
            markets = fields.list_of(bmap.get("markets", []), "markets")
        except RowError as exc:
            errors.append((i, f"{where}: {exc}"))
            continue
        for k, mraw in enumerate(markets):
            try:
                good, bad = _toa_market(ev, book, mraw, book_ms, fmt, now_ms, where)
            except RowError as exc:  # the market itself is malformed: skip it, keep its siblings
                errors.append((i, f"{where} market #{k}: {exc}"))
                continue
            quotes.extend(good)
            errors.extend((i, reason) for reason in bad)
    return quotes, errors


def count_toa_rows(payload: object) -> int:
    """How many rows (outcomes) a TOA event list holds, counted before parsing it, so a
    request's row cap counts rows, not events. Malformed parts count as one row each."""
    if not isinstance(payload, list):
        return 0
    total = 0
    for ev in payload:
        books = ev.get("bookmakers") if isinstance(ev, dict) else None
        if not isinstance(books, list):
            total += 1
            continue
        for book in books:
            markets = book.get("markets") if isinstance(book, dict) else None
            if not isinstance(markets, list):
                total += 1
                continue
            for market in markets:
                outcomes = market.get("outcomes") if isinstance(market, dict) else None
                total += len(outcomes) if isinstance(outcomes, list) else 1
    return total


def parse_toa_events(
    payload: object, *, now_ms: int, odds_format: str = "decimal"
) -> tuple[list[Quote], list[tuple[int, str]]]:
    """A TOA v4 `/odds` event list -> (good quotes, [(event index, reason)]).

    A bad outcome rejects only its own row; a bad event or bookmaker rejects what it holds.
    Raises RowError only when the payload is not a list at all.
    """
    if odds_format not in ODDS_FORMATS:
        raise RowError(f"odds_format: {odds_format!r} is not one of {', '.join(ODDS_FORMATS)}")
    events = fields.list_of(payload, "payload")
    quotes: list[Quote] = []
    errors: list[tuple[int, str]] = []
    for i, raw in enumerate(events):
        good, bad = _toa_event(i, raw, odds_format, now_ms)
        quotes.extend(good)
        errors.extend(bad)
    return quotes, errors


# --- play-by-play rows ------------------------------------------------------------------


def _score(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if fields.is_int(value):
        if not 0 <= value <= fields.MAX_SCORE:
            raise RowError(f"{name}: must be between 0 and {fields.MAX_SCORE}")
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 20:
        return fields.check_unicode(name, value)
    if value is None:
        raise RowError(f"{name}: required")
    shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
    raise RowError(f"{name}: expected a non-empty string of at most 20 characters or an integer, got {shown}")


def _period(state: Mapping[str, Any]) -> int | None:
    """The period number (seed page: `"period": 4`); a string of digits is taken as its number."""
    period = state.get("period")
    if isinstance(period, str) and len(period) <= 10 and period.strip().isascii() and period.strip().isdigit():
        period = int(period)
    if period is None:
        return None
    if not fields.is_int(period):
        shown = repr(period[:40]) if isinstance(period, str) else type(period).__name__
        raise RowError(f"state.period: expected the period number (an integer: 1, 2, ...; overtime goes on "
                       f"counting), got {shown}")
    if not 0 <= period <= fields.MAX_PERIOD:
        raise RowError(f"state.period: must be between 0 and {fields.MAX_PERIOD}")
    return period


def _state(row: Mapping[str, Any]) -> tuple[int | None, str | None, str]:
    raw = row.get("state")
    state = {} if raw is None else fields.mapping(raw, "state")
    period = _period(state)
    clock = state.get("clock")
    if clock is not None and (not isinstance(clock, str) or len(clock) > fields.MAX_CLOCK):
        raise RowError(f"state.clock: expected a string of at most {fields.MAX_CLOCK} characters")
    if clock is not None:
        fields.check_unicode("state.clock", clock)
    status = state.get("status")
    if status is not None and (not isinstance(status, str) or not status.strip() or len(status) > 40):
        shown = repr(status[:40]) if isinstance(status, str) else type(status).__name__
        raise RowError(f"state.status: expected a non-empty string of at most 40 characters, got {shown}")
    if status is not None:
        fields.check_unicode("state.status", status)
    return period, clock, "in_progress" if status is None else status


def parse_pbp_row(row: object, *, now_ms: int) -> Play:
    """One PBP row (the `pbp_event` payload without `id`) -> Play."""
    r = fields.mapping(row, "row")
    role = fields.text(r, "role") or "primary"
    if role not in ("primary", "secondary"):
        raise RowError(f"role: {role!r} must be primary or secondary")
    description = r.get("description", "")
    if not isinstance(description, str) or len(description) > fields.MAX_DESCRIPTION:
        raise RowError(f"description: expected a string of at most {fields.MAX_DESCRIPTION} characters")
    fields.check_unicode("description", description)
    period, clock, status = _state(r)
    return Play(
        match_id=fields.req_text(r, "match_id"),
        sport_key=fields.key(r, "sport_key"),
        source=fields.req_text(r, "source"),
        role=role,
        event_type=fields.req_text(r, "event_type"),
        team_or_player_a=fields.req_text(r, "team_or_player_a"),
        team_or_player_b=fields.req_text(r, "team_or_player_b"),
        score_a=_score(r, "score_a"),
        score_b=_score(r, "score_b"),
        description=description,
        period=period,
        clock=clock,
        occurred_at_ms=fields.ms(r, "occurred_at_ms"),
        captured_at_ms=fields.ms(r, "captured_at_ms", now_ms),
        status=status,
    )


def play_to_row(p: Play) -> dict[str, Any]:
    """Play -> PBP row; `parse_pbp_row(play_to_row(p), now_ms=...) == p`."""
    return {
        "match_id": p.match_id,
        "sport_key": p.sport_key,
        "source": p.source,
        "role": p.role,
        "event_type": p.event_type,
        "team_or_player_a": p.team_or_player_a,
        "team_or_player_b": p.team_or_player_b,
        "score_a": p.score_a,
        "score_b": p.score_b,
        "description": p.description,
        "state": {"period": p.period, "clock": p.clock, "status": p.status},
        "occurred_at_ms": p.occurred_at_ms,
        "captured_at_ms": p.captured_at_ms,
    }

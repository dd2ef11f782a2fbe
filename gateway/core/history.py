"""Line history and the closing line (issue 15.2): what the history answer and the CLV helper
compute from stored price changes.

Pure. A series is one (book, market, outcome, player, point): a change of point starts a new
series, as it is a new line. The store keeps each change as (time, price) with a price code:
an American price, or 0 (suspended) / 1 (closed), which no American price can be.

- `open`: the first price of a series still in the history; `current`: its last;
  `close`: its last price observed before the event's `commence_time`, once it has started.
- CLV of a bet: the distance on the cents line from the closing price to the bet's price
  (positive: the bet got a better price than the close) and the same in implied probability
  (the close's minus the bet's: positive is good too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .model import CLOSED, OPEN, SUSPENDED, Quote
from .odds import american_to_probability, format_price, to_cents

SUSPENDED_CODE, CLOSED_CODE = 0, 1


def history_price(q: Quote) -> int:
    """The stored price code of a quote (see the module docstring)."""
    if q.status == SUSPENDED:
        return SUSPENDED_CODE
    if q.status == CLOSED:
        return CLOSED_CODE
    return q.price


def status_of(code: int) -> str:
    return SUSPENDED if code == SUSPENDED_CODE else CLOSED if code == CLOSED_CODE else OPEN


@dataclass(frozen=True, slots=True)
class Series:
    bookmaker: str
    market_key: str
    outcome: str
    player: str | None
    point: float | None
    changes: Sequence[tuple[int, int]]  # (ms, price code), oldest first; the whole stored history


def _price(code: int, ms: int, fmt: str) -> dict[str, Any]:
    out: dict[str, Any] = {"t": ms, "price": None if code in (SUSPENDED_CODE, CLOSED_CODE) else
                           format_price(code, fmt)}
    if code in (SUSPENDED_CODE, CLOSED_CODE):
        out["status"] = status_of(code)
    return out


def last_priced_before(changes: Sequence[tuple[int, int]], before_ms: int) -> tuple[int, int] | None:
    """The last open price observed before `before_ms` (the closing line at the start)."""
    found = None
    for ms, code in changes:
        if ms >= before_ms:
            break
        if code not in (SUSPENDED_CODE, CLOSED_CODE):
            found = (ms, code)
    return found


def series_json(s: Series, *, commence_ms: int, now_ms: int, from_ms: int, to_ms: int,
                odds_format: str) -> dict[str, Any]:
    """One series of the history answer: its changes within [from_ms, to_ms], open, current, close."""
    priced = [(ms, c) for ms, c in s.changes if c not in (SUSPENDED_CODE, CLOSED_CODE)]
    first, last = (priced[0] if priced else None), s.changes[-1] if s.changes else None
    close = last_priced_before(s.changes, commence_ms) if now_ms >= commence_ms else None
    return {
        "bookmaker": s.bookmaker, "market_key": s.market_key, "outcome": s.outcome, "player": s.player,
        "point": s.point,
        "open": None if first is None else _price(first[1], first[0], odds_format),
        "current": None if last is None else _price(last[1], last[0], odds_format),
        "close": None if close is None else _price(close[1], close[0], odds_format),
        "changes": [_price(c, ms, odds_format) for ms, c in s.changes if from_ms <= ms <= to_ms],
    }


def clv(bet_price: int, close_price: int) -> dict[str, Any]:
    """Closing-line value of a bet at `bet_price` against `close_price` (both American)."""
    p_bet, p_close = american_to_probability(bet_price), american_to_probability(close_price)
    return {"close_price": close_price, "clv_cents": to_cents(bet_price) - to_cents(close_price),
            "clv_probability": round(p_close - p_bet, 4), "bet_implied_probability": round(p_bet, 4),
            "close_implied_probability": round(p_close, 4)}


def closing_price(series: Sequence[Series], *, bookmaker: str, market_key: str, outcome: str,
                  player: str | None, point: float | None, commence_ms: int) -> tuple[Series, tuple[int, int]] | None:
    """The closing price of one book's outcome: at the bet's point if that line has one, else
    the latest line's (a spread or total that moved); None if the book had no price before the start."""
    best: tuple[Series, tuple[int, int]] | None = None
    for s in series:
        if (s.bookmaker, s.market_key, s.outcome, s.player) != (bookmaker, market_key, outcome, player):
            continue
        close = last_priced_before(s.changes, commence_ms)
        if close is None:
            continue
        if point is not None and s.point == point:
            return s, close
        if best is None or close[0] > best[1][0]:
            best = (s, close)
    return best

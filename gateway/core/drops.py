"""Drop (line-move) detection: a tick-to-tick state machine over quotes.

Pure: no clock (times come in on the quotes), no I/O. Every price change of at least one
cent is reported once; per-connection thresholds are filters applied downstream, so the
work is done once per change however many clients listen.

Rules (CONTRACT.md, drop rules):
- key = (event, book, market, outcome, player, point/line); a new point is a new key;
- the first price of a key only sets its baseline; each later price is compared with the
  previous one and becomes the new baseline;
- `game_line` books report moneyline moves only (their spreads/totals carry no per-side price);
- a suspension (or closing) is not a drop: it leaves the baseline where the last open price
  put it, and the first open price after it is compared with that price; its Drop says
  `after_suspension`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .model import Drop, Quote

PER_MARKET = "per_market"
GAME_LINE = "game_line"
COVERAGES = (PER_MARKET, GAME_LINE)

_Key = tuple[str, str, str, str, str | None, float | None]


class DropDetector:
    """Remembers the last price per key and reports moves.

    `coverage` maps bookmaker -> `per_market` | `game_line`; unknown books are `per_market`.
    """

    __slots__ = ("_coverage", "_last")

    def __init__(self, coverage: Mapping[str, str] | None = None) -> None:
        self._coverage = dict(coverage or {})
        # key -> (cents, price, observed_at_ms, suspended since)
        self._last: dict[_Key, tuple[int, int, int, bool]] = {}

    def set_coverage(self, bookmaker: str, coverage: str) -> None:
        self._coverage[bookmaker] = coverage

    def observe(self, q: Quote) -> Drop | None:
        """Record `q`; return a Drop if its price moved since the last quote of its key."""
        if q.market_key != "h2h" and self._coverage.get(q.bookmaker) == GAME_LINE:
            return None
        key = (q.event_id, q.bookmaker, q.market_key, q.outcome, q.player, q.point)
        price = q.price
        cents = price + 100 if price < 0 else price - 100  # odds.to_cents, inlined: hot path
        last = self._last.get(key)
        if q.status != "open":  # not a drop: remember the last open price, and that it is suspended
            if last is None:
                self._last[key] = (cents, price, q.observed_at_ms, True)
            elif not last[3]:
                self._last[key] = (*last[:3], True)
            return None
        self._last[key] = (cents, price, q.observed_at_ms, False)
        if last is None:
            return None
        delta = cents - last[0]
        if delta == 0:
            return None
        return Drop(q, last[1], price, delta, "toward_favorite" if delta < 0 else "toward_dog",
                    max(0, q.observed_at_ms - last[2]), last[3])

    def observe_all(self, quotes: Iterable[Quote]) -> list[Drop]:
        observe = self.observe
        return [d for q in quotes if (d := observe(q)) is not None]

    def forget_event(self, event_id: str) -> None:
        """Drop every baseline of a finished event, so memory stays bounded."""
        for key in [k for k in self._last if k[0] == event_id]:
            del self._last[key]

    def __len__(self) -> int:
        return len(self._last)


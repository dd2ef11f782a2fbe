"""Market state (issue 15.1): which `market_status` frames a batch makes, and which markets a
poller's book stopped listing.

Pure. A market, or one outcome of it, is `open`, `suspended` or `closed`; the state travels
on quotes (`Quote.status`) and the board keeps it per cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from .board import Board
from .model import CLOSED, OPEN, SUSPENDED, Quote

# a market a book stops listing: suspended while its event is upcoming or in play, closed after
NOT_LISTED = "not_listed"

_Market = tuple[str, str, str, str | None]  # event, book, market, player


class StatusChanges:
    """The cells whose state changed in one batch: their state before the batch, and the last
    quote of each (its `reason`). `frames` compares with the board after the batch."""

    __slots__ = ("_before", "_last")

    def __init__(self) -> None:
        self._before: dict[tuple[_Market, str], str] = {}
        self._last: dict[tuple[_Market, str], Quote] = {}

    def note(self, q: Quote, before: str) -> None:
        key = ((q.event_id, q.bookmaker, q.market_key, q.player), q.outcome)
        self._before.setdefault(key, before)
        self._last[key] = q

    def frames(self, board: Board) -> Iterator[tuple[str, str | None, str, Quote]]:
        """(market_key, outcome or None for the whole market, new status, a quote of it) per
        change that stuck: one for the market when every outcome the board holds of it is
        now in the same state and all of them changed, else one per outcome."""
        by_market: dict[_Market, list[tuple[str, Quote]]] = {}
        for (market, outcome), q in self._last.items():
            now = q.status
            cell = board.cell(q)
            if cell is not None:
                now = cell.status
            if now != self._before[(market, outcome)]:
                by_market.setdefault(market, []).append((outcome, replace(q, status=now)))
        for (_, _, market_key, _), changes in by_market.items():
            q = changes[0][1]
            cells = board.market_cells(q)
            states = {c.status for c in cells}
            if len(states) == 1 and len(changes) == len(cells) and {x.status for _, x in changes} == states:
                yield market_key, None, q.status, q
            else:
                for outcome, x in sorted(changes, key=lambda c: c[0]):
                    yield market_key, outcome, x.status, x


def unlisted(last: Iterable[Quote], listed: set[tuple[str, str, str, str | None]], *, now_ms: int,
             live_window_ms: int) -> list[Quote]:
    """The quotes that mark as suspended (or closed, once the event is over) the markets a
    poller saw before (`last`: its previous answer's quotes) and does not see now (`listed`:
    (event, book, market, player) of this answer). Already suspended or closed ones are left."""
    out = []
    for q in last:
        if (q.event_id, q.bookmaker, q.market_key, q.player) in listed or q.status != OPEN:
            continue
        over = now_ms >= q.commence_time_ms + live_window_ms
        out.append(replace(q, status=CLOSED if over else SUSPENDED, reason=NOT_LISTED, observed_at_ms=now_ms))
    return out

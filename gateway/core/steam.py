"""Steam moves: several books moving one outcome the same way within a short window.

Pure: no clock (times are the quotes' observation times), no I/O. Fed with every drop the
DropDetector reports (so `game_line` coverage already applies), it reports one `Steam` when
at least `books` distinct books have moved the same outcome in the same direction by at
least `threshold` cents each within `window_ms`.

Rules (README "Steam moves"):
- The outcome key is (event, market, outcome, player): books quoting a spread at different
  points still move the same side.
- A book counts once however often it moved; its latest qualifying move decides its
  direction, so a book that moves back by `threshold` or more drops out. Its move in the
  steam is its first qualifying move of that direction inside the window.
- Moves are ordered by their observation time, not by arrival: a late quote of an earlier
  move joins its window, and the first mover is the earliest move, whatever arrived first.
- One steam per episode: once an outcome has steamed in a direction, it steams in that
  direction again only after a window without such a move. Books that join meanwhile are
  part of the move already reported.
- The first price after a suspension (`after_suspension`) is a repricing after a game event
  (a goal: every book reopens at a new price), not steam: it never counts, and a suspension
  does not undo the moves before it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from .model import Drop, Quote

_Key = tuple[str, str, str, str | None]


@dataclass(frozen=True, slots=True)
class Move:
    """One book's qualifying move inside a steam."""

    bookmaker: str
    prev: int
    new: int
    delta: int  # cents, signed
    point: float | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Steam:
    quote: Quote  # the move that completed it (event, market, outcome, player fields)
    direction: str  # toward_favorite | toward_dog
    moves: tuple[Move, ...]  # one per book, oldest first

    @property
    def books(self) -> tuple[str, ...]:
        return tuple(m.bookmaker for m in self.moves)

    @property
    def first_mover(self) -> str:
        return self.moves[0].bookmaker

    @property
    def spread_ms(self) -> int:
        return self.moves[-1].at_ms - self.moves[0].at_ms

    @property
    def min_cents(self) -> int:
        return min(abs(m.delta) for m in self.moves)


class SteamDetector:
    """Per outcome, each book's first qualifying move of its current direction (a dict of a
    few books): a move costs a dict update, and the window is only looked at once enough
    books have moved. `observe` takes every drop; the writer may skip the ones under the
    threshold itself (they never count)."""

    __slots__ = ("_outcomes", "books", "threshold", "window_ms")

    def __init__(self, *, books: int = 3, threshold: int = 10, window_ms: int = 60_000) -> None:
        if books < 2:
            raise ValueError("books must be at least 2")
        self.books, self.threshold, self.window_ms = books, threshold, window_ms
        # outcome -> [book -> its run of qualifying moves in its latest direction, books per sign]
        # a run: [sign, first time, last time, [drop, ...] by time]
        # and, by sign, the last move time of the episode last reported
        self._outcomes: dict[_Key, tuple[dict[str, list[Any]], list[int], list[int | None]]] = {}

    def observe(self, d: Drop) -> Steam | None:
        """Record one drop; a Steam when it completes one."""
        delta = d.delta
        if (delta if delta > 0 else -delta) < self.threshold or d.after_suspension:
            return None
        q = d.quote
        key = (q.event_id, q.market_key, q.outcome, q.player)
        entry = self._outcomes.get(key)
        if entry is None:
            entry = self._outcomes[key] = ({}, [0, 0, 0], [None, None, None])  # indexed by sign: [_, +1, -1]
        books, counts, episodes = entry
        t, sign, window = q.observed_at_ms, (1 if delta > 0 else -1), self.window_ms
        run = books.get(q.bookmaker)
        if run is None:
            books[q.bookmaker] = [sign, t, t, [d]]
            counts[sign] += 1
        elif run[0] != sign:
            if t < run[2]:
                return None  # an older move the other way: the book has turned round since
            run[0], run[1], run[2], run[3] = sign, t, t, [d]  # the book turned round
            counts[sign] += 1
            counts[-sign] -= 1
        else:
            moves = run[3]
            if t >= run[2]:
                moves.append(d)
                run[2] = t
            else:
                bisect.insort(moves, d, key=_time)
                if t < run[1]:
                    run[1] = t
            if run[1] < t - 2 * window and len(moves) > 8:  # too old to share a window with anything new
                moves[:] = [m for m in moves if m.quote.observed_at_ms >= t - 2 * window]
                run[1] = moves[0].quote.observed_at_ms
        if counts[sign] < self.books:
            return None
        lo, hi, n = t - window, t + window, 0  # enough books moving this way near this move?
        for r in books.values():
            if r[0] == sign and r[1] <= hi and r[2] >= lo:
                n += 1
        if n < self.books:
            return None
        fired = episodes[sign]
        if fired is not None and t <= fired + window:
            episodes[sign] = max(fired, t)  # the same episode goes on
            return None
        after = -(2**62) if fired is None else fired + window
        best = _densest([(x.quote.observed_at_ms, b, x) for b, r in books.items() if r[0] == sign for x in r[3]
                         if x.quote.observed_at_ms > after], window, self.books)
        if best is None:
            return None
        episodes[sign] = best[-1].at_ms
        return Steam(q, "toward_dog" if sign > 0 else "toward_favorite", tuple(best))

    def forget_event(self, event_id: str) -> None:
        for key in [k for k in self._outcomes if k[0] == event_id]:
            del self._outcomes[key]

    def __len__(self) -> int:
        return len(self._outcomes)


def _time(d: Drop) -> int:
    return d.quote.observed_at_ms


def _densest(moves: list[tuple[int, str, Drop]], window_ms: int, books: int) -> list[Move] | None:
    """The earliest window of `window_ms` holding moves of at least `books` books, as each
    book's first move in it (by time); None if there is none."""
    moves.sort(key=lambda m: (m[0], m[1]))
    for i, (start, _, _) in enumerate(moves):
        firsts: dict[str, Move] = {}
        for tm, book, x in moves[i:]:
            if tm - start > window_ms:
                break
            if book not in firsts:
                firsts[book] = Move(book, x.prev, x.new, x.delta, x.quote.point, tm)
        if len(firsts) >= books:
            return list(firsts.values())
    return None

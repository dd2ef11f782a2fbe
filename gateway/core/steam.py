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

    __slots__ = ("_fired", "_outcomes", "books", "threshold", "window_ms")

    def __init__(self, *, books: int = 3, threshold: int = 10, window_ms: int = 60_000) -> None:
        if books < 2:
            raise ValueError("books must be at least 2")
        self.books, self.threshold, self.window_ms = books, threshold, window_ms
        # outcome -> book -> its run of qualifying moves in its latest direction: [sign, [(time, drop)]]
        self._outcomes: dict[_Key, dict[str, list[Any]]] = {}
        self._fired: dict[tuple[_Key, int], int] = {}  # (outcome, sign) -> last move time of its episode

    def observe(self, d: Drop) -> Steam | None:
        """Record one drop; a Steam when it completes one."""
        delta = d.delta
        if (delta if delta > 0 else -delta) < self.threshold or d.after_suspension:
            return None
        q = d.quote
        key = (q.event_id, q.market_key, q.outcome, q.player)
        books = self._outcomes.get(key)
        if books is None:
            books = self._outcomes[key] = {}
        t, sign, window = q.observed_at_ms, (1 if delta > 0 else -1), self.window_ms
        run = books.get(q.bookmaker)
        if run is None or (run[0] != sign and t >= run[1][-1][0]):
            books[q.bookmaker] = [sign, [(t, d)]]  # a first move, or the book turned round
        elif run[0] == sign:
            moves = run[1]
            if t >= moves[-1][0]:
                moves.append((t, d))
            else:
                bisect.insort(moves, (t, d), key=lambda m: m[0])
            if moves[0][0] < t - 2 * window:  # too old to share a window with anything new
                run[1] = [m for m in moves if m[0] >= t - 2 * window]
        else:
            return None  # an older move the other way: the book has turned round since
        fired = self._fired.get((key, sign))
        if fired is not None and t <= fired + window:
            self._fired[(key, sign)] = max(fired, t)  # the same episode goes on
            return None
        if len(books) < self.books:
            return None
        lo, hi, n = t - window, t + window, 0  # cheap test first: enough books near this move?
        for r in books.values():
            if r[0] == sign and r[1][0][0] <= hi and r[1][-1][0] >= lo:
                n += 1
        if n < self.books:
            return None
        after = -(2**62) if fired is None else fired + window
        best = _densest([(tm, b, x) for b, r in books.items() if r[0] == sign for tm, x in r[1] if tm > after],
                        window, self.books)
        if best is None:
            return None
        self._fired[(key, sign)] = best[-1].at_ms
        return Steam(q, "toward_dog" if sign > 0 else "toward_favorite", tuple(best))

    def forget_event(self, event_id: str) -> None:
        for key in [k for k in self._outcomes if k[0] == event_id]:
            del self._outcomes[key]
        for fk in [k for k in self._fired if k[0][0] == event_id]:
            del self._fired[fk]

    def __len__(self) -> int:
        return len(self._outcomes)


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

"""Conflation: of the frames held over one window, the latest per key, in id order.

Pure. A client that asks for `conflate_ms` gets at most one frame per (event, book, market)
per window (Betfair's `conflateMs`): an `odds_update` carries a whole OddsRow, so the latest
frame of a row holds the latest values of every market in it, and a `market_status` the
latest state of its market (or outcome). Their ids are their own, so a conflated frame's id
is the highest id it covers and resuming from it is exact: every frame it stands for is at
or below it. Frames that do not describe a state (drops, steam, plays, stream status) are
kept, all of them. `take()` gives the window's frames sorted by id, so the last id a client
saw is always the highest it has, as on an unconflated stream.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from .frames import Frame

MIN_MS, MAX_MS = 0, 120_000


def conflation_key(f: Frame) -> Hashable | None:
    """What a frame supersedes: None for frames that are kept whatever follows them."""
    if f.type == "odds_update":
        return ("row", f.event_id, f.bookmaker, f.row)
    if f.type == "market_status":
        return ("status", f.event_id, f.bookmaker, f.markets, f.outcome)
    return None


class Conflator:
    """The frames of one window for one group of subscribers."""

    __slots__ = ("_keep", "_latest")

    def __init__(self) -> None:
        self._latest: dict[Hashable, Frame] = {}
        self._keep: list[Frame] = []

    def add(self, frames: Iterable[Frame]) -> None:
        latest, keep = self._latest, self._keep
        for f in frames:
            key = conflation_key(f)
            if key is None:
                keep.append(f)
            else:
                old = latest.get(key)
                if old is None or (f.seq or 0) >= (old.seq or 0):
                    latest[key] = f

    def take(self) -> list[Frame]:
        """The held frames, latest per key, by id (control frames without one last); empties it."""
        out = [*self._latest.values(), *self._keep]
        self._latest, self._keep = {}, []
        out.sort(key=_order)
        return out

    def peek(self) -> list[Frame]:
        """What `take` would give, left in place."""
        return sorted([*self._latest.values(), *self._keep], key=_order)

    def __len__(self) -> int:
        return len(self._latest) + len(self._keep)

    def __bool__(self) -> bool:
        return bool(self._latest) or bool(self._keep)


def _order(f: Frame) -> float:
    return float("inf") if f.seq is None else f.seq


def conflate(frames: Iterable[Frame]) -> list[Frame]:
    """One window's worth at once (a replay page): the latest per key, by id."""
    c = Conflator()
    c.add(frames)
    return c.take()

"""The delivery pool, shared fairly by keys. Pure (no I/O, no clock).

One key's dead endpoints must delay only that key: every POST (a delivery attempt or a
`/test`) holds a slot of a pool of `total`, and one key holds at most `per_key` of them.
The last `reserve` free slots (`min(per_key, total - per_key)`) go only to keys that hold
none, so even several keys with dead endpoints, each stuck at its share, leave room for a
key that has something to send now. When slots free up, the keys holding the fewest go
first (`fair_order`), so a key that sends rarely is not queued behind a long backlog.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


class Shares:
    """Slots in use, in total and per key."""

    def __init__(self, total: int, per_key: int) -> None:
        if not 1 <= per_key <= total:
            raise ValueError("need 1 <= per_key <= total")
        self.total = total
        self.per_key = per_key
        self.reserve = min(per_key, total - per_key)
        self.in_use = 0
        self._held: dict[Hashable, int] = {}

    @property
    def full(self) -> bool:
        return self.in_use >= self.total

    def held(self, key: Hashable) -> int:
        return self._held.get(key, 0)

    def can_take(self, key: Hashable) -> bool:
        held, free = self.held(key), self.total - self.in_use
        return free > 0 and held < self.per_key and (held == 0 or free > self.reserve)

    def take(self, key: Hashable) -> None:
        if not self.can_take(key):
            raise RuntimeError("no slot for this key")
        self.in_use += 1
        self._held[key] = self.held(key) + 1

    def give(self, key: Hashable) -> None:
        left = self.held(key) - 1
        if left < 0:
            raise RuntimeError("this key holds no slot")
        self.in_use -= 1
        if left:
            self._held[key] = left
        else:
            del self._held[key]


def fair_order(items: Iterable[T], key: Callable[[T], Hashable], held: Callable[[Hashable], int]) -> list[T]:
    """`items` (oldest first) interleaved across keys: first the oldest item of each key, keys
    holding the fewest slots first (ties: whose oldest item came first), then every key's
    second item, and so on. Within a key the order is kept."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    keys = sorted(groups, key=held)  # stable: ties keep the order of their first item
    out: list[T] = []
    rank, total = 0, sum(len(g) for g in groups.values())
    while len(out) < total:
        out.extend(groups[k][rank] for k in keys if rank < len(groups[k]))
        rank += 1
    return out

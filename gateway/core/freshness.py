"""Source freshness: when each (source, sport) last delivered, and how much in 5 minutes.

Pure: callers pass `now_ms`. Counts live in 10-second buckets so memory stays constant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_MS = 5 * 60 * 1000
BUCKET_MS = 10_000


@dataclass(slots=True)
class _Source:
    role: str
    last_ms: int = 0
    buckets: deque[list[int]] = field(default_factory=deque)  # [bucket_start_ms, count]


class Freshness:
    def __init__(self) -> None:
        self._sources: dict[tuple[str, str], _Source] = {}

    def record(self, source: str, sport_key: str, now_ms: int, count: int = 1, role: str = "primary") -> None:
        s = self._sources.get((source, sport_key))
        if s is None:
            s = self._sources[(source, sport_key)] = _Source(role)
        s.role = role
        s.last_ms = max(s.last_ms, now_ms)
        start = now_ms - now_ms % BUCKET_MS
        if s.buckets and s.buckets[-1][0] == start:
            s.buckets[-1][1] += count
        else:
            s.buckets.append([start, count])
        while s.buckets and s.buckets[0][0] <= now_ms - WINDOW_MS:
            s.buckets.popleft()

    def last_ms(self, source: str, sport_key: str) -> int | None:
        s = self._sources.get((source, sport_key))
        return s.last_ms if s else None

    def is_stale(self, source: str, sport_key: str, now_ms: int, stale_after_s: float) -> bool:
        last = self.last_ms(source, sport_key)
        return last is None or now_ms - last > stale_after_s * 1000

    def rows(self, sport_key: str, now_ms: int, stale_after_s: float) -> list[dict[str, object]]:
        """The contract's source-health rows for one sport, freshest first."""
        out = []
        for (source, sport), s in self._sources.items():
            if sport != sport_key:
                continue
            age_s = max(0.0, (now_ms - s.last_ms) / 1000)
            recent = sum(c for start, c in s.buckets if start > now_ms - WINDOW_MS)
            out.append({
                "sport_key": sport,
                "source": source,
                "role": s.role,
                "events_last_5min": recent,
                "seconds_since_last_event": round(age_s, 3),
                "latest_capture_ms": s.last_ms,
                "status": "stale" if age_s > stale_after_s else "fresh",
            })
        out.sort(key=lambda r: r["seconds_since_last_event"])  # type: ignore[arg-type,return-value]
        return out

    def sports(self) -> set[str]:
        return {sport for _, sport in self._sources}

    def export(self) -> list[list[object]]:
        """Everything, as JSON-able lists (a cluster's writer hands it to its edges)."""
        return [[source, sport, s.role, s.last_ms, [list(b) for b in s.buckets]]
                for (source, sport), s in self._sources.items()]

    def replace(self, rows: list[list[Any]]) -> None:
        """Take the state `export` gave (an edge, from its writer)."""
        self._sources = {(str(source), str(sport)): _Source(str(role), int(last_ms),
                                                            deque([int(b[0]), int(b[1])] for b in buckets))
                         for source, sport, role, last_ms, buckets in rows}

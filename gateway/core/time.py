"""Time formatting helpers. Pure: callers pass the time in; nothing here reads a clock."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=4096)  # the same commence times recur in every frame of an event
def iso_from_ms(ms: int) -> str:
    """1747000000123 -> '2025-05-11T21:46:40Z' (whole seconds, as The Odds API writes)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms_from_iso(text: str) -> int:
    """Parse an ISO-8601 time ('Z' or an offset; naive means UTC) to unix ms."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)

"""Ingest's own rate limit, per key: requests a second and rows a second (issue 19).

Pure: the caller passes `now` (seconds, any monotonic clock). Two token buckets per key,
each holding one second's worth at most (`burst`, at least MIN_BURST requests):

- requests: one token per ingest request;
- rows: one token per row the request carries (flat quotes, plays, or each outcome of a
  The Odds API event list). A request may take more rows than the bucket holds, so that a
  big batch is never refused for ever: it needs only as many tokens as the bucket can hold
  (a full bucket), and the rows past them are a debt the next requests wait for. Over time
  a key gets its rows/s, in batches of any size.

A refusal says which limit, its rate and burst, and when to retry (whole seconds, >= 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_BURST = 10
REQUESTS = "ingest_requests_per_s"
ROWS = "ingest_rows_per_s"


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str  # REQUESTS or ROWS: the tier setting that refused
    per_s: int
    burst: int
    retry_s: int


class _Bucket:
    __slots__ = ("last", "per_s", "tokens")

    def __init__(self, per_s: int, now: float) -> None:
        self.per_s = per_s
        self.tokens = float(burst_of(per_s))
        self.last = now

    def refill(self, per_s: int, now: float) -> float:
        if per_s != self.per_s:  # the key's tier (or the config) changed
            self.per_s = per_s
        self.tokens = min(float(burst_of(per_s)), self.tokens + (now - self.last) * per_s)
        self.last = now
        return self.tokens


def burst_of(per_s: int) -> int:
    """What a bucket holds at most: one second's worth, at least MIN_BURST."""
    return max(MIN_BURST, per_s)


class IngestLimiter:
    def __init__(self) -> None:
        self._requests: dict[int, _Bucket] = {}
        self._rows: dict[int, _Bucket] = {}

    def request(self, key_id: int, per_s: int, now: float) -> Refusal | None:
        """One request of `key_id`: None (counted) or the refusal (nothing counted)."""
        bucket = self._requests.get(key_id)
        if bucket is None:
            bucket = self._requests[key_id] = _Bucket(per_s, now)
        if bucket.refill(per_s, now) >= 1.0:
            bucket.tokens -= 1.0
            return None
        return Refusal(REQUESTS, per_s, burst_of(per_s), _retry(1.0 - bucket.tokens, per_s))

    def rows(self, key_id: int, rows: int, per_s: int, now: float) -> Refusal | None:
        """`rows` rows of a request of `key_id`: None (counted) or the refusal."""
        bucket = self._rows.get(key_id)
        if bucket is None:
            bucket = self._rows[key_id] = _Bucket(per_s, now)
        need = min(float(rows), float(burst_of(per_s)))
        if bucket.refill(per_s, now) >= need:
            bucket.tokens -= rows  # past the burst: a debt
            return None
        return Refusal(ROWS, per_s, burst_of(per_s), _retry(need - bucket.tokens, per_s))

    def quota(self, key_id: int, per_s: int, now: float) -> tuple[int, int]:
        """(requests that may be sent at once now, seconds until the request bucket is full)."""
        bucket = self._requests.get(key_id)
        tokens = bucket.refill(per_s, now) if bucket is not None else float(burst_of(per_s))
        return max(0, int(tokens)), math.ceil((burst_of(per_s) - tokens) / per_s)


def _retry(missing: float, per_s: int) -> int:
    return max(1, math.ceil(missing / per_s))

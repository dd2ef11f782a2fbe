"""A token bucket: `rate` tokens a second, at most `burst` held. Pure: the caller passes `now`."""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self._tokens, self._last = burst, now

    def take(self, cost: float, now: float) -> bool:
        """Spend `cost` tokens if there are that many; False (nothing spent) if not."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

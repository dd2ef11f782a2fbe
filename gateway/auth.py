"""API keys, tiers, per-key connection caps and request rate limits.

Keys are random tokens shown once; only their SHA-256 is stored (a key has 192 bits of
entropy, so a slow hash adds nothing). Lookups go by hash and are confirmed with a
constant-time compare. Cap slots are objects whose release is idempotent, so every
`finally` (and the garbage collector, for streams that never start) may release them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlite_utils

from .config import TierConfig

KEY_PREFIX = "gw_"
CACHE_S = 2.0  # a revoked key stops working within this long
SCOPES = ("ingest",)


class KeyError_(ValueError):
    """A key operation that cannot be done (unknown tier, duplicate name, no such key)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    tier: str
    scopes: frozenset[str]
    prefix: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def create_key(conn: sqlite3.Connection, *, name: str, tier: str, tiers: Mapping[str, TierConfig],
               scopes: tuple[str, ...] = (), now_ms: int | None = None) -> str:
    if tier not in tiers:
        raise KeyError_(f"unknown tier {tier!r}: use one of {', '.join(tiers)}")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise KeyError_(f"unknown scope {bad[0]!r}: use one of {', '.join(SCOPES)}")
    if not name.strip():
        raise KeyError_("name must not be empty")
    key = new_key()
    try:
        conn.execute(
            "INSERT INTO api_keys (name, key_hash, prefix, tier, scopes, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (name, hash_key(key), key[:8], tier, ",".join(scopes), now_ms or int(time.time() * 1000)),
        )
    except sqlite3.IntegrityError:
        raise KeyError_(f"a key named {name!r} already exists (revoke it first)") from None
    return key


def list_keys(conn: sqlite3.Connection) -> list[dict[str, object]]:
    """Every key's listing (never the key): a cold path, read with sqlite-utils."""
    rows = sqlite_utils.Database(conn)["api_keys"].rows_where(
        select="name, prefix, tier, scopes, created_ms, revoked_ms", order_by="id")
    return [{"name": r["name"], "prefix": r["prefix"] + "...", "tier": r["tier"], "scopes": r["scopes"],
             "created_ms": r["created_ms"], "revoked": r["revoked_ms"] is not None} for r in rows]


def revoke_key(conn: sqlite3.Connection, key_or_name: str, now_ms: int | None = None) -> str:
    """Revoke by full key or by name; returns the name revoked."""
    row = conn.execute(
        "SELECT id, name FROM api_keys WHERE (key_hash = ? OR name = ?) AND revoked_ms IS NULL",
        (hash_key(key_or_name), key_or_name),
    ).fetchone()
    if row is None:
        raise KeyError_(f"no active key matches {key_or_name[:8]!r}...")
    conn.execute("UPDATE api_keys SET revoked_ms = ? WHERE id = ?", (now_ms or int(time.time() * 1000), row[0]))
    return str(row[1])


def delete_key_named(conn: sqlite3.Connection, name: str) -> None:
    """Delete a key and what it owns (its webhooks and their deliveries): api_keys ids are
    not AUTOINCREMENT, so the next key created may get this id, and must not inherit them."""
    for (key_id,) in conn.execute("SELECT id FROM api_keys WHERE name = ?", (name,)).fetchall():
        conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE key_id = ?)",
                     (key_id,))
        conn.execute("DELETE FROM webhooks WHERE key_id = ?", (key_id,))
    conn.execute("DELETE FROM api_keys WHERE name = ?", (name,))


def lookup_key(conn: sqlite3.Connection, key: str) -> ApiKey | None:
    digest = hash_key(key)
    row = conn.execute(
        "SELECT id, name, tier, scopes, prefix, key_hash FROM api_keys WHERE key_hash = ? AND revoked_ms IS NULL",
        (digest,),
    ).fetchone()
    if row is None or not hmac.compare_digest(row[5], digest):
        return None
    return ApiKey(row[0], row[1], row[2], frozenset(s for s in row[3].split(",") if s), row[4])


class KeyCache:
    """Short-lived memory of lookups so a stream of requests does not hit SQLite each time.
    By the key as sent (hashing it first cost more than the lookup); at most 10,000 entries."""

    def __init__(self, ttl_s: float = CACHE_S) -> None:
        self._ttl = ttl_s
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    def get(self, key: str, now: float) -> tuple[bool, ApiKey | None]:
        hit = self._entries.get(key)
        if hit is None or now - hit[0] > self._ttl:
            return False, None
        return True, hit[1]

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: str, value: ApiKey | None, now: float) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (now, value)


KEY_REVOKED = "key_revoked"
TIER_REQUIRED = "tier_required"


class Slot:
    """One held connection under a key's cap. `release` is idempotent. `end(reason)` ends the
    stream that holds it (a revoked key, a tier without that stream): its stream sets `on_end`."""

    __slots__ = ("_caps", "key_id", "needs", "on_end", "released", "tier")

    def __init__(self, caps: ConnectionCaps, key_id: int, tier: str, needs: str) -> None:
        self._caps = caps
        self.key_id = key_id
        self.tier = tier
        self.needs = needs  # "pbp" (the play-by-play SSE stream) or "odds" (odds, drops, WebSocket)
        self.on_end: Callable[[str], None] | None = None
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._caps._release(self)

    def end(self, reason: str) -> None:
        if self.on_end is not None:
            self.on_end(reason)
        self.release()


def verdict(slot: Slot, state: tuple[str, bool] | None, tiers: Mapping[str, TierConfig]) -> str | None:
    """Why the stream holding `slot` must end, given its key's (tier, revoked) now; None: it may go on."""
    if state is None or state[1]:
        return KEY_REVOKED
    tier = tiers.get(state[0])
    if tier is None or not (tier.pbp_sse if slot.needs == "pbp" else tier.odds_streams):
        return TIER_REQUIRED
    return None


def key_states(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[str, bool]]:
    """{key id: (tier, revoked)} for these ids (a deleted key is absent)."""
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, tier, revoked_ms IS NOT NULL FROM api_keys WHERE id IN ({marks})", ids)
    return {r[0]: (r[1], bool(r[2])) for r in rows}


def set_tier(conn: sqlite3.Connection, key_or_name: str, tier: str, tiers: Mapping[str, TierConfig]) -> str:
    """Move an active key (by key or name) to another tier; returns its name."""
    if tier not in tiers:
        raise KeyError_(f"unknown tier {tier!r}: use one of {', '.join(tiers)}")
    row = conn.execute("SELECT id, name FROM api_keys WHERE (key_hash = ? OR name = ?) AND revoked_ms IS NULL",
                       (hash_key(key_or_name), key_or_name)).fetchone()
    if row is None:
        raise KeyError_(f"no active key matches {key_or_name[:8]!r}...")
    conn.execute("UPDATE api_keys SET tier = ? WHERE id = ?", (tier, row[0]))
    return str(row[1])


class ConnectionCaps:
    """Concurrent SSE+WS connections per key, one count shared by every stream."""

    def __init__(self) -> None:
        self.slots: dict[int, set[Slot]] = {}
        self.by_tier: dict[str, int] = {}
        self.rejections = 0

    @property
    def active(self) -> dict[int, int]:
        return {key_id: len(held) for key_id, held in self.slots.items()}

    async def acquire(self, key_id: int, limit: int, tier: str = "", needs: str = "odds") -> Slot | None:
        """What streams call: a slot, or None at the cap. Here the count is this process's; a
        cluster edge's caps (gateway/cluster/caps.py) also count every other edge's."""
        return self.try_acquire(key_id, limit, tier, needs)

    def try_acquire(self, key_id: int, limit: int, tier: str = "", needs: str = "odds") -> Slot | None:
        held = self.slots.get(key_id)
        if held is not None and len(held) >= limit:
            self.rejections += 1
            return None
        slot = Slot(self, key_id, tier, needs)
        self.slots.setdefault(key_id, set()).add(slot)
        self.by_tier[tier] = self.by_tier.get(tier, 0) + 1
        return slot

    def _release(self, slot: Slot) -> None:
        held = self.slots.get(slot.key_id)
        if held is not None:
            held.discard(slot)
            if not held:
                del self.slots[slot.key_id]
        self.by_tier[slot.tier] = max(0, self.by_tier.get(slot.tier, 0) - 1)

    def count(self, key_id: int) -> int:
        return len(self.slots.get(key_id, ()))


def burst_size(per_minute: int) -> int:
    """Requests a key may send at once: a tenth of its per-minute rate, at least 10."""
    return int(max(10.0, per_minute / 10.0))


class RateLimiter:
    """Token bucket per key: `per_minute` requests, bursts up to `burst_size` (a tenth, >= 10)."""

    def __init__(self) -> None:
        self._buckets: dict[int, tuple[float, float]] = {}
        self._used: dict[int, tuple[int, int]] = {}  # key -> (minute, requests counted in it)

    def check(self, key_id: int, per_minute: int, now: float) -> float:
        """Return 0 if allowed, else the seconds to wait before retrying."""
        rate = per_minute / 60.0
        burst = float(max(burst_size(per_minute), per_minute / 10.0))
        tokens, last = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        minute = int(now // 60)
        used = self._used.get(key_id)
        self._used[key_id] = (minute, used[1] + 1 if used is not None and used[0] == minute else 1)
        if tokens >= 1.0:
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / rate

    def quota(self, key_id: int, per_minute: int, now: float) -> tuple[int, int, int]:
        """(requests left now, seconds until the burst is whole again, requests counted this
        minute) for the quota headers (issue 15.6): X-RateLimit-Remaining / -Reset and The
        Odds API's x-requests-remaining / -used."""
        rate = per_minute / 60.0
        burst = float(max(burst_size(per_minute), per_minute / 10.0))
        tokens, last = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        used = self._used.get(key_id)
        counted = used[1] if used is not None and used[0] == int(now // 60) else 0
        return int(tokens), math.ceil((burst - tokens) / rate) if rate > 0 else 0, counted

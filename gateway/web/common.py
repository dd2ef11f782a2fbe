"""Shared pieces of the HTTP layer: the error envelope, key extraction, tier gates, params.

Every error leaves as `{"error", "message", "request_id", ...}` with the right status; a
handler raises `ApiError` and never builds an error response itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio
from quart import g, request

from ..auth import ApiKey, hash_key, lookup_key
from ..core.filters import ParamError, Params

if TYPE_CHECKING:
    from ..app import Gateway


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "request_id": request_id, **self.extra}


def bad_param(exc: ParamError) -> ApiError:
    return ApiError(400, "invalid_param", exc.message, param=exc.param)


def params() -> Params:
    return request.args.to_dict(flat=False)


def key_from(headers: Any, args: Any) -> str | None:
    """The API key from any accepted form; a header wins over a query parameter."""
    key = headers.get("X-API-Key")
    if not key:
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    if not key:
        key = args.get("apiKey") or args.get("api_key")
    return key or None


async def resolve_key(gw: Gateway, key: str | None) -> ApiKey:
    if key is None:
        raise ApiError(401, "missing_key", "an API key is required: X-API-Key header, "
                       "Authorization: Bearer, or ?apiKey=")
    found = await lookup_cached(gw, key)
    if found is None:
        raise ApiError(401, "invalid_key", "the API key is unknown or revoked")
    return found


async def lookup_cached(gw: Gateway, key: str) -> ApiKey | None:
    digest = hash_key(key)
    now = trio.current_time()
    hit, value = gw.key_cache.get(digest, now)
    if not hit:
        value = await gw.store.read(lambda conn: lookup_key(conn, key))
        gw.key_cache.put(digest, value, now)
    return value


async def authenticate(*, rate_limited: bool = True) -> ApiKey:
    """The request's key, rate limited per the key's tier (REST; streams are governed by the
    connection cap instead). Stored on `g` for logging."""
    from ..app import current_gateway

    gw = current_gateway()
    api_key = await resolve_key(gw, key_from(request.headers, request.args))
    g.key_name = api_key.name
    tier = gw.config.tiers[api_key.tier]
    if not rate_limited:
        return api_key
    wait = gw.rate_limiter.check(api_key.id, tier.requests_per_minute, time.monotonic())
    if wait > 0:
        retry = max(1, int(wait + 0.999))
        raise ApiError(429, "rate_limit", f"too many requests for tier {api_key.tier} "
                       f"({tier.requests_per_minute}/min)", headers={"Retry-After": str(retry)},
                       retry_after_seconds=retry, limit=tier.requests_per_minute)
    return api_key


def require_stream_tier(gw: Gateway, api_key: ApiKey, *, pbp: bool, what: str) -> None:
    tier = gw.config.tiers[api_key.tier]
    allowed = tier.pbp_sse if pbp else tier.odds_streams
    if not allowed:
        need = [name for name, t in gw.config.tiers.items() if (t.pbp_sse if pbp else t.odds_streams)]
        raise ApiError(403, "tier_required", f"{what} needs tier {' or '.join(need)}; this key is {api_key.tier}",
                       tier=api_key.tier, required=need)


def check_sport(gw: Gateway, sport_key: str) -> None:
    if sport_key not in gw.universe.sports:
        raise ApiError(400, "invalid_param", f"unknown sport {sport_key!r}", param="sport_key")

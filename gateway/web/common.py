"""Shared pieces of the HTTP layer: the error envelope, key extraction, tier gates, params.

Every error leaves as `{"error", "message", "request_id", ...}` with the right status; a
handler raises `ApiError` and never builds an error response itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio
from quart import g, request

from ..auth import ApiKey, burst_size
from ..core.filters import ParamError, Params

if TYPE_CHECKING:
    from ..handle import Gateway


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


def store_unavailable(reason: str) -> ApiError:
    """A commit failed (writer.StoreUnavailable): nothing of the request was stored; a 200 always means stored."""
    return ApiError(503, "store_unavailable", f"nothing of this request was stored: {reason}; retry later",
                    headers={"Retry-After": "5"}, retry_after_seconds=5)


def bad_param(exc: ParamError) -> ApiError:
    return ApiError(400, "invalid_param", exc.message, param=exc.param)


def params() -> Params:
    return request.args.to_dict(flat=False)


KEY_PARAMS = ("apiKey", "api_key")


def key_from(headers: Any, args: Any, *, header_keys: Iterable[str] = ()) -> str | None:
    """The API key from any accepted form, or None.

    Header forms (`X-API-Key`, `Authorization: Bearer`, and `header_keys`: the WebSocket
    `apikey.KEY` subprotocols) win over the query parameters (`apiKey`, `api_key`), which are
    looked at only when no header carries a key. Within the forms that count, every key given
    must be the same (repeats are fine): two different keys are a 400 `invalid_param`, so a
    proxy that appends its own header cannot be overridden by a client that sends one too.
    """
    from_headers = [*_values(headers, "X-API-Key"), *_bearer(headers), *(k for k in header_keys if k)]
    if from_headers:
        return _one(from_headers, "X-API-Key", "in its headers (X-API-Key, Authorization: Bearer, apikey. subprotocol)")
    from_query = [v.strip() for name in KEY_PARAMS for v in _getlist(args, name) if v.strip()]
    if from_query:
        return _one(from_query, "apiKey", "in its query parameters (apiKey, api_key)")
    return None


def _one(keys: list[str], param: str, where: str) -> str:
    if any(k != keys[0] for k in keys):
        raise ApiError(400, "invalid_param", f"the request carries {len(set(keys))} different API keys {where}; "
                       "send exactly one", param=param)
    return keys[0]


def _getlist(multi: Any, name: str) -> list[str]:
    if hasattr(multi, "getlist"):
        return [str(v) for v in multi.getlist(name)]
    value = multi.get(name)
    return [] if value is None else [str(value)]


def _values(headers: Any, name: str) -> list[str]:
    """A header's values, also when a proxy joined repeated lines with commas (keys have none)."""
    return [part.strip() for value in _getlist(headers, name) for part in value.split(",") if part.strip()]


def _bearer(headers: Any) -> list[str]:
    return [v[7:].strip() for v in _values(headers, "Authorization") if v[:7].lower() == "bearer " and v[7:].strip()]


async def resolve_key(gw: Gateway, key: str | None) -> ApiKey:
    if key is None:
        raise ApiError(401, "missing_key", "an API key is required: X-API-Key header, "
                       "Authorization: Bearer, or ?apiKey=")
    found = await lookup_cached(gw, key)
    if found is None:
        raise ApiError(401, "invalid_key", "the API key is unknown or revoked")
    return found


async def lookup_cached(gw: Gateway, key: str) -> ApiKey | None:
    now = trio.current_time()
    hit, value = gw.key_cache.get(key, now)
    if not hit:
        value = await gw.view.lookup_key(key)
        gw.key_cache.put(key, value, now)
    return value


async def authenticate(*, rate_limited: bool = True) -> ApiKey:
    """The request's key, rate limited per the key's tier (REST; streams are governed by the
    connection cap instead). Stored on `g` for logging."""
    from ..handle import current_gateway

    gw = current_gateway()
    api_key = await resolve_key(gw, key_from(request.headers, request.args))
    g.key_name = api_key.name
    tier = gw.config.tiers[api_key.tier]
    if not rate_limited:
        return api_key
    now = time.monotonic()
    wait = gw.rate_limiter.check(api_key.id, tier.requests_per_minute, now)
    g.quota = (api_key.id, tier.requests_per_minute)  # the quota headers (errors.py)
    if wait > 0:
        retry = max(1, int(wait + 0.999))
        burst = burst_size(tier.requests_per_minute)
        raise ApiError(429, "rate_limit", f"too many requests for tier {api_key.tier} "
                       f"({tier.requests_per_minute}/min, bursts of up to {burst}); retry in {retry} s",
                       headers={"Retry-After": str(retry)}, retry_after_seconds=retry,
                       limit=tier.requests_per_minute, burst=burst)
    return api_key


def quota_headers(gw: Gateway, path: str) -> dict[str, str]:
    """X-RateLimit-Limit/-Remaining/-Reset for a request `authenticate` rate-limited, and on
    /v4 routes The Odds API's x-requests-remaining/-used, so its clients' quota logic works
    unchanged (README "Quota headers"). Empty for requests without a key."""
    quota = getattr(g, "quota", None)
    if quota is None:
        return {}
    key_id, per_minute = quota
    remaining, reset, used = gw.rate_limiter.quota(key_id, per_minute, time.monotonic())
    out = {"X-RateLimit-Limit": str(per_minute), "X-RateLimit-Remaining": str(remaining),
           "X-RateLimit-Reset": str(reset)}
    if path.startswith("/v4/"):
        out.update({"x-requests-remaining": str(remaining), "x-requests-used": str(used)})
    return out


def time_param(p: Params, name: str) -> int | None:
    """A time parameter: unix milliseconds or an ISO-8601 time; None when absent."""
    from ..core.time import ms_from_iso

    values = p.get(name)
    text = values[-1].strip() if values else ""
    if not text:
        return None
    if text.isdigit():
        value = int(text)
        if value < 100_000_000_000 or value > 10_000_000_000_000:
            raise ParamError(name, f"{value} is not unix milliseconds (seconds? send milliseconds or ISO-8601)")
        return value
    try:
        return ms_from_iso(text)
    except ValueError:
        raise ParamError(name, f"must be unix milliseconds or an ISO-8601 time such as 2026-05-12T22:30:00Z, "
                         f"got {text[:40]!r}") from None


def time_range(p: Params, *, oldest_ms: int | None, now_ms: int, what: str = "") -> tuple[int | None, int | None]:
    """(`from`, `to`) in ms, checked: `from` after `to`, or `from`/`to` before `oldest_ms` (what is
    kept: `what` says which window), are errors naming the parameter, never an empty answer
    that would look like nothing happened."""
    since, until = time_param(p, "from"), time_param(p, "to")
    if since is not None and until is not None and since > until:
        raise ParamError("from", f"is after to ({since} > {until})")
    for name, value in (("from", since), ("to", until)):
        if value is not None and oldest_ms is not None and value < oldest_ms:
            raise ParamError(name, f"{value} is before what is kept ({oldest_ms}: {what or 'the retention window'})")
    return since, until


def require_stream_tier(gw: Gateway, api_key: ApiKey, *, pbp: bool, what: str) -> None:
    tier = gw.config.tiers[api_key.tier]
    allowed = tier.pbp_sse if pbp else tier.odds_streams
    if not allowed:
        need = [name for name, t in gw.config.tiers.items() if (t.pbp_sse if pbp else t.odds_streams)]
        raise ApiError(403, "tier_required", f"{what} needs tier {' or '.join(need)}; this key is {api_key.tier}",
                       tier=api_key.tier, required=need)


def writer_only() -> None:
    """Ingest and webhooks are the writer's: a cluster edge answers 421 `wrong_role`, naming
    the writer's URL (before the key is looked at or the body read)."""
    from ..handle import current_gateway

    writer_only_on(current_gateway())


def writer_only_on(gw: Gateway) -> None:
    """`writer_only` for a route served below Quart (ingest: POST /v1/ingest/*)."""
    view = gw.view
    if view.edge:
        url = view.writer_url
        raise ApiError(421, "wrong_role", "this gateway is a cluster edge: ingest and webhooks are served by the "
                       f"cluster's writer{' at ' + url if url else ''}", writer_url=url or None)


def check_sport(gw: Gateway, sport_key: str) -> None:
    if sport_key not in gw.universe.sports:
        raise ApiError(400, "invalid_param", f"unknown sport {sport_key!r}", param="sport_key")

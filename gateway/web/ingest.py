"""HTTP push ingest, the part both carriers share: POST /v1/ingest/odds and /v1/ingest/pbp
through Hypercorn (ingest_http.py) and on kept keep-alive connections (ingest_keepalive.py),
for keys with the `ingest` scope.

Each row is validated on its own: good rows are stored, bad rows come back with their index
and reason. A body that is not a JSON list stores nothing. The answer is sent after the
rows are committed, so a 200 (or a WebSocket `ingest_result`) means they are in the store
(and already published); a failed commit is 503 `store_unavailable` and stores nothing.

A request holds at most MAX_ROWS rows: flat quotes and PBP rows count one each, a The Odds
API event list counts its outcomes (one event with 60,000 outcomes is 60,000 rows).
Ingest has its own rate limit per key (core/ingest_limit.py), apart from REST's: requests
a second and rows a second, from the key's tier.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..auth import ApiKey
from ..core import client_json
from ..core.ingest_limit import REQUESTS, Refusal
from ..core.model import Play, Quote
from ..core.parse import RowError, count_toa_rows, parse_flat_quote, parse_pbp_row, parse_toa_events
from ..handle import Gateway
from ..writer import wall_ms
from .common import ApiError, resolve_key

T = TypeVar("T")

MAX_ROWS = 50_000
KINDS = {"/v1/ingest/odds": "odds", "/v1/ingest/pbp": "pbp"}  # the POST routes (served below Quart)
_SOURCE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_WRAPPERS = ("quotes", "events", "plays", "data")


@dataclass(frozen=True, slots=True)
class Feeder:
    """An authorised ingest client: its key and what its query asked for."""

    api_key: ApiKey
    source: str
    odds_format: str | None  # oddsFormat, read (and checked) only for The Odds API event lists


async def authorise(gw: Gateway, key: str | None, args: Any) -> Feeder:
    """401 without a (valid) key, 403 without the ingest scope, 400 for a bad `source`."""
    api_key = await resolve_key(gw, key)
    if "ingest" not in api_key.scopes:
        raise ApiError(403, "scope_required", "this key lacks the ingest scope "
                       "(create one with: gateway keys create --scope ingest ...)")
    source = args.get("source") or "push"
    if not _SOURCE.match(source):
        raise ApiError(400, "invalid_param", "source must be 1-64 letters, digits, _ . : -", param="source")
    return Feeder(api_key, source, args.get("oddsFormat"))


def admit(gw: Gateway, feeder: Feeder) -> None:
    """Count one request against the key's ingest_requests_per_s (429 past it)."""
    tier = gw.config.tiers[feeder.api_key.tier]
    refusal = gw.ingest_limiter.request(feeder.api_key.id, tier.ingest_requests_per_s, time.monotonic())
    if refusal is not None:
        raise _too_many(feeder, refusal)


def quota(gw: Gateway, feeder: Feeder) -> dict[str, str]:
    """X-RateLimit-* of ingest's request bucket (per minute, as REST's headers count)."""
    per_s = gw.config.tiers[feeder.api_key.tier].ingest_requests_per_s
    remaining, reset = gw.ingest_limiter.quota(feeder.api_key.id, per_s, time.monotonic())
    return {"X-RateLimit-Limit": str(per_s * 60), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset)}


def _too_many(feeder: Feeder, r: Refusal) -> ApiError:
    what = "requests" if r.limit == REQUESTS else "rows"
    return ApiError(429, "rate_limit", f"too many ingest {what} for tier {feeder.api_key.tier} ({r.limit} = "
                    f"{r.per_s}, bursts of up to {r.burst}); retry in {r.retry_s} s",
                    headers={"Retry-After": str(r.retry_s)}, retry_after_seconds=r.retry_s, limit=r.per_s,
                    burst=r.burst, rate_limit=r.limit)


def decode(raw: bytes | str) -> list[Any]:
    """The rows of a body or message: a JSON list, or an object holding one under `quotes`,
    `events`, `plays` or `data` (400 `invalid_body` otherwise, 413 past MAX_ROWS)."""
    try:
        body = client_json.loads(raw)
    except client_json.ClientJsonError as exc:
        raise ApiError(400, "invalid_body", f"body is {exc.message}") from None
    if isinstance(body, dict):
        for name in _WRAPPERS:
            if isinstance(body.get(name), list):
                body = body[name]
                break
    if not isinstance(body, list):
        raise ApiError(400, "invalid_body", "body must be a JSON list of rows")
    _check_rows(len(body))
    return body


def _check_rows(rows: int) -> None:
    if rows > MAX_ROWS:
        raise ApiError(413, "payload_too_large", f"at most {MAX_ROWS} rows per request (this one has {rows}; "
                       "each outcome of a The Odds API event counts as a row)", limit=MAX_ROWS)


async def ingest(gw: Gateway, feeder: Feeder, kind: str, body: list[Any]) -> dict[str, Any]:
    """Validate, store and publish the rows; the report once they are committed. ApiError for
    what is refused as a whole (422 when every row is bad), writer.StoreUnavailable when the
    commit failed."""
    now = wall_ms()
    rejected: list[dict[str, Any]] = []
    quotes: list[Quote] = []
    plays: list[Play] = []
    if kind == "pbp":
        _rows_allowed(gw, feeder, len(body))
        plays = _each_row(body, parse_pbp_row, now, rejected)
    elif body and all(isinstance(r, dict) and "bookmakers" in r for r in body):
        rows = count_toa_rows(body)
        _check_rows(rows)
        fmt = "decimal" if feeder.odds_format is None else feeder.odds_format
        if fmt not in ("decimal", "american"):
            raise ApiError(400, "invalid_param", "oddsFormat must be decimal or american", param="oddsFormat")
        _rows_allowed(gw, feeder, rows)
        quotes, errors = parse_toa_events(body, now_ms=now, odds_format=fmt)
        rejected = [{"index": i, "error": reason} for i, reason in errors]
    else:
        _rows_allowed(gw, feeder, len(body))
        quotes = _each_row(body, parse_flat_quote, now, rejected)
    accepted = len(quotes) + len(plays)
    if accepted == 0 and rejected:
        raise ApiError(422, "invalid_rows", f"all {len(rejected)} rows were rejected; nothing was stored",
                       rejected=rejected[:1000])
    if accepted:
        await gw.writer.submit_and_wait(quotes, plays, source=feeder.source if kind == "odds" else "push")
    return {"accepted": accepted, "rejected": rejected[:1000], "rejected_count": len(rejected)}


def _each_row(body: list[Any], parse: Callable[..., T], now: int, rejected: list[dict[str, Any]]) -> list[T]:
    """Each row parsed on its own: the good ones, in order; the bad ones go to `rejected`."""
    out = []
    for i, row in enumerate(body):
        try:
            out.append(parse(row, now_ms=now))
        except RowError as exc:
            rejected.append({"index": i, "error": str(exc)})
    return out


def _rows_allowed(gw: Gateway, feeder: Feeder, rows: int) -> None:
    tier = gw.config.tiers[feeder.api_key.tier]
    refusal = gw.ingest_limiter.rows(feeder.api_key.id, rows, tier.ingest_rows_per_s, time.monotonic())
    if refusal is not None:
        raise _too_many(feeder, refusal)

"""SSE streams: play-by-play, odds and drops. Plans (validated parameters, tier gates) and
the body of a stream. The HTTP side is `streams_asgi.py`, which serves these routes below
Quart. Every parameter is validated before the stream starts (400 naming it).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

from ..auth import ApiKey, Slot
from ..core.filters import Filter, ParamError, Params, bool_param, int_param, one, parse_filter, parse_sports
from ..core.frames import ODDS, PBP, sse_retry
from ..handle import Gateway
from ..streaming import Idle, StreamPlan, StreamSession, odds_snapshot
from ..writer import wall_ms
from .common import ApiError, bad_param, require_stream_tier
from .direct import DirectWriter, attach, run_direct, send_unless_cut, sse_encoder

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def acquire_slot(gw: Gateway, api_key: ApiKey, plan: StreamPlan) -> Slot:
    limit = gw.config.tiers[api_key.tier].max_connections
    slot = await gw.caps.acquire(api_key.id, limit, api_key.tier, needs="pbp" if plan.streams == (PBP,) else "odds")
    if slot is None:
        raise ApiError(429, "connection_cap", f"this key already holds {limit} concurrent streams "
                       f"(tier {api_key.tier}); close one or upgrade", headers={"Retry-After": "5"},
                       limit=limit, retry_after_seconds=5)
    return slot


def resume_params(p: Params, header: str | None) -> tuple[int | None, bool]:
    """(last_event_id, header_was_garbage). The query parameter must be valid; a header is
    whatever a browser echoes back, so a bad one becomes a reset frame rather than a 400."""
    text = one(p, "last_event_id")
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ParamError("last_event_id", f"must be a non-negative integer, got {text!r}") from None
        if value < 0:
            raise ParamError("last_event_id", "must be a non-negative integer")
        return value, False
    if header:
        return (int(header), False) if header.strip().isdigit() else (None, True)
    return None, False


def common_params(gw: Gateway, p: Params, last_event_header: str | None, *,
                  named_default: bool) -> tuple[int, bool, int | None, bool]:
    heartbeat_s = int_param(p, "heartbeat_s", gw.config.streams.heartbeat_s, 1, 30)
    named = bool_param(p, "named_events", named_default)
    last_id, bad_header = resume_params(p, last_event_header)
    return heartbeat_s, named, last_id, bad_header


async def sse_body(gw: Gateway, plan: StreamPlan, slot: Slot, *, named: bool, conn: Any, chunked: bool,
                   idle: Idle | None = None, left: Callable[[], bool] | None = None,
                   handover: Callable[[StreamSession, DirectWriter], bool] | None = None,
                   ) -> AsyncGenerator[bytes, None]:
    """The bytes of one SSE stream: what the session yields until it is live, then (if `conn`
    is a plain HTTP/1.x connection) direct writes by the publisher, this task left with
    heartbeats, whatever the socket could not take at once and the end (`run_direct`), or
    `handover` takes the stream off this request (detached.py)."""
    retry = sse_retry(gw.config.streams.retry_ms)
    writer = None if conn is None else DirectWriter(conn, encode=sse_encoder(named, chunked=chunked),
                                                    max_backlog=gw.config.streams.direct_backlog_bytes,
                                                    stall_s=gw.config.streams.write_stall_timeout_s)

    def gone() -> bool:  # checked between replay pages: a client that left stops its replay at once
        return (writer is not None and writer.dead) or (left is not None and left())

    session = StreamSession(gw, plan, idle, gone)
    slot.on_end = session.end  # a revoked key ends the stream (key_watch.py)
    try:
        async with aclosing(session.frames()) as batches:
            first = True
            async for batch in batches:
                if not batch:
                    pass  # the session went live: see below
                elif first or writer is None:  # the first bytes go with the headers, through Hypercorn
                    data = b"".join(f.sse(named) for f in batch)
                    del batch
                    yield retry + data if first else data
                    del data
                    first = False
                elif await send_unless_cut(writer, session.sub, writer.encode(batch)):
                    await run_direct(session, writer, plan.heartbeat_s)
                    return
                if writer is not None and attach(session, writer):  # from now on the publisher writes
                    if handover is None or not handover(session, writer):  # detached.py, else here
                        await run_direct(session, writer, plan.heartbeat_s)
                    return
    finally:
        session.close()


def connected(api_key: ApiKey, stream_name: str, sports: frozenset[str] | None, flt: Filter,
              path_sport: str, **extra: Any) -> dict[str, Any]:
    return {"type": "connected", "stream": stream_name, "sport_key": path_sport,
            "sports": sorted(sports) if sports is not None else "all", "tier": api_key.tier,
            "filters": flt.describe(), "push_mode": "raw", "min_push_interval_s": 0.0,
            "timestamp": wall_ms(), **extra}


def pbp_plan(gw: Gateway, api_key: ApiKey, sport_key: str, p: Params,
             last_event_header: str | None) -> tuple[StreamPlan, bool]:
    require_stream_tier(gw, api_key, pbp=True, what="the play-by-play stream")
    catalog = gw.universe.catalog()
    try:
        sports = parse_sports({}, sport_key, catalog)
        flt = parse_filter(p, catalog)
        heartbeat_s, named, last_id, bad = common_params(gw, p, last_event_header, named_default=True)
    except ParamError as exc:
        raise bad_param(exc) from None
    match_id = one(p, "match_id", "event_id")

    async def snapshot() -> dict[str, Any]:
        rows = await gw.view.live_state([sport_key], match_id, live_only=True)
        return {"type": "initial_state", "sport_key": sport_key, "timestamp": wall_ms(), "count": len(rows),
                "data": rows}

    plan = StreamPlan((PBP,), sports, flt, heartbeat_s, connected(api_key, "pbp", sports, flt, sport_key),
                      snapshot, last_id, bad)
    return plan, named


def odds_plan(gw: Gateway, api_key: ApiKey, sport_key: str, p: Params,
              last_event_header: str | None) -> tuple[StreamPlan, bool]:
    require_stream_tier(gw, api_key, pbp=False, what="the odds stream")
    catalog = gw.universe.catalog()
    try:
        sports = parse_sports({}, sport_key, catalog)
        flt = parse_filter(p, catalog, conflate=True)
        heartbeat_s, named, last_id, bad = common_params(gw, p, last_event_header, named_default=False)
        limit = int_param(p, "limit", 500, 1, 1000)
        max_age_s = int_param(p, "max_age_s", 600, 1, 3600)
        since = int_param(p, "since", 0, 0, 2**53) if one(p, "since") else None
    except ParamError as exc:
        raise bad_param(exc) from None

    async def snapshot() -> dict[str, Any]:
        now = wall_ms()
        rows, truncated = odds_snapshot(gw.board, sports, flt, now=now, max_age_s=max_age_s, since=since,
                                        limit=limit, final=gw.view.final_matches)
        return {"type": "initial_state", "sport_key": sport_key, "timestamp": now, "count": len(rows),
                "data": rows, "since": since, "truncated": truncated, "snapshot_complete": not truncated}

    info = connected(api_key, "odds", sports, flt, sport_key)
    return StreamPlan((ODDS,), sports, flt, heartbeat_s, info, snapshot, last_id, bad), named


def drops_plan(gw: Gateway, api_key: ApiKey, sport_key: str, p: Params,
               last_event_header: str | None, *, steam: str | None = None) -> tuple[StreamPlan, bool]:
    """The drop stream; `kinds=steam` adds steam frames (`steam="only"`: /v1/steam)."""
    require_stream_tier(gw, api_key, pbp=False, what="the steam stream" if steam else "the drop stream")
    catalog = gw.universe.catalog()
    try:
        sports = parse_sports(p, sport_key, catalog)
        flt = parse_filter(p, catalog, drops=True, steam=steam)
        heartbeat_s, named, last_id, bad = common_params(gw, p, last_event_header, named_default=False)
    except ParamError as exc:
        raise bad_param(exc) from None
    name = "steam" if steam else "drops"
    plan = StreamPlan(flt.drop_streams, sports, flt, heartbeat_s, connected(api_key, name, sports, flt, sport_key),
                      None, last_id, bad)
    return plan, named


def steam_plan(gw: Gateway, api_key: ApiKey, sport_key: str, p: Params,
               last_event_header: str | None) -> tuple[StreamPlan, bool]:
    """`/v1/steam/{sport}`: the drop stream's steam frames only, with its other params."""
    return drops_plan(gw, api_key, sport_key, p, last_event_header, steam="only")

"""The drop stream end to end: real server, real HTTP clients."""

from __future__ import annotations

import trio

from .conftest import Running
from .helpers import next_of, push, quote, sse_events


async def test_drop_arrives_with_contract_fields(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with c.stream("GET", "/v1/odds-drop/basketball_nba",
                                params={"apiKey": key, "threshold": 10, "bookmakers": "pinnacle"}) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                assert resp.headers["x-accel-buffering"] == "no"
                events = sse_events(resp)
                first = await next_of(events, "connected")
                assert first.data["filters"]["bookmakers"] == ["pinnacle"]
                await push(c, ingest, [quote(-120)])
                drop = await next_of(events, "odds_drop")
    d = drop.data
    assert drop.id is not None and int(drop.id) == d["id"]
    assert (d["bookmaker"], d["side"], d["prev"], d["new"], d["delta"], d["direction"]) == (
        "pinnacle", "h2h_home", -110, -120, -10, "toward_favorite")
    assert d["delta_cents"] == 10 and d["sport_key"] == "basketball_nba"


async def test_threshold_and_direction_filter(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with c.stream("GET", "/v1/odds-drop/basketball_nba",
                                params={"apiKey": key, "threshold": 15, "direction": "toward_dog"}) as resp:
                events = sse_events(resp)
                await next_of(events, "connected")
                await push(c, ingest, [quote(-130)])  # -20 toward favourite: filtered by direction
                await push(c, ingest, [quote(-125)])  # +5: below threshold
                await push(c, ingest, [quote(-105)])  # +20 toward dog: delivered
                drop = await next_of(events, "odds_drop")
    assert (drop.data["prev"], drop.data["new"], drop.data["direction"]) == (-125, -105, "toward_dog")

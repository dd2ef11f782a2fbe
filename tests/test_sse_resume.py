"""Resume by Last-Event-ID: every missed frame, in order, no gap, no duplicate; else a reset."""

from __future__ import annotations

from typing import Any

import trio

from gateway.store import Store, prune_log

from .conftest import Running
from .helpers import next_of, push, quote, sse_events

PRICES = [-110, -125, -140, -120, -150, -105, 110, 130, -115, 150]


async def collect_drops(c: Any, key: str, n: int, **params: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    headers = {"Last-Event-ID": str(params.pop("last_event_id"))} if "last_event_id" in params else {}
    async with c.stream("GET", "/v1/odds-drop/basketball_nba", params={"apiKey": key, "threshold": 1, **params},
                        headers=headers) as resp:
        async for ev in sse_events(resp):
            if ev.data["type"] in ("odds_drop", "stream_status"):
                got.append(ev.data)
                if len(got) >= n:
                    break
    return got


async def test_resume_replays_exactly_the_missed_frames(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-100)])
            async with c.stream("GET", "/v1/odds-drop/basketball_nba",
                                params={"apiKey": key, "threshold": 1}) as resp:
                events = sse_events(resp)
                await next_of(events, "connected")
                await push(c, ingest, [quote(PRICES[0]), quote(PRICES[1], book="bet365")])
                await push(c, ingest, [quote(PRICES[1])])
                seen = [await next_of(events, "odds_drop") for _ in range(2)]
            # the client is gone; more moves happen (two books so ids interleave with others)
            for p in PRICES[2:]:
                await push(c, ingest, [quote(p), quote(p, book="betmgm")])
            last = int(seen[-1].data["id"])
            missed = await collect_drops(c, key, 15, last_event_id=last, bookmakers="pinnacle,betmgm")
    pinnacle = [d for d in missed if d["bookmaker"] == "pinnacle"]
    assert [d["new"] for d in pinnacle] == PRICES[2:]
    ids = [d["id"] for d in missed]
    assert ids == sorted(set(ids)) and min(ids) > last


async def test_resume_with_query_param_and_then_live(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-100)])
            await push(c, ingest, [quote(-110)])
            r = await c.get("/v1/odds-drop/basketball_nba/recent", params={"apiKey": key, "threshold": 1})
            first_id = r.json()[0]["id"]
            await push(c, ingest, [quote(-120)])
            async with c.stream("GET", "/v1/odds-drop/basketball_nba",
                                params={"apiKey": key, "threshold": 1, "last_event_id": first_id}) as resp:
                events = sse_events(resp)
                replayed = await next_of(events, "odds_drop")
                await push(c, ingest, [quote(-130)])
                live = await next_of(events, "odds_drop")
    assert (replayed.data["new"], live.data["new"]) == (-120, -130)
    assert int(live.id or 0) > int(replayed.id or 0) > first_id


async def test_unknown_id_gets_reset_frame(gateway: Running) -> None:
    key = gateway.key()
    with trio.fail_after(10):
        async with gateway.client() as c:
            got = await collect_drops(c, key, 1, last_event_id=10**9)
    assert got[0]["type"] == "stream_status" and got[0]["status"] == "reset"
    assert got[0]["reason"] == "unknown_id" and got[0]["fresh_snapshot_required_to_clear"] is True


async def test_id_older_than_retention_gets_reset_then_snapshot(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-100)])
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-120)])
            store = Store(gateway.config.db_path(), readers=1)
            try:
                store.write_fn_sync(lambda conn: prune_log(conn, 2**62))
            finally:
                store.close()
            async with c.stream("GET", "/v1/sse/odds/basketball_nba",
                                params={"apiKey": key}, headers={"Last-Event-ID": "1"}) as resp:
                events = sse_events(resp)
                status = await next_of(events, "stream_status")
                snap = await next_of(events, "initial_state")
    assert status.data["reason"] == "resume_window_exceeded"
    assert snap.data["count"] == 1 and snap.data["data"][0]["home_ml"] == -120

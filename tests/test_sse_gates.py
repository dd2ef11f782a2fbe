"""Tier gates, per-key connection caps shared by every stream, and parameter errors."""

from __future__ import annotations

import trio

from .conftest import Running, make_config, start_gateway
from .helpers import next_of, sse_events


async def test_bad_stream_params_are_400_naming_them(gateway: Running) -> None:
    key = gateway.key()
    cases = [
        ("/v1/odds-drop/basketball_nba", {"threshold": "0"}, "threshold"),
        ("/v1/odds-drop/basketball_nba", {"threshold": "201"}, "threshold"),
        ("/v1/odds-drop/basketball_nba", {"threshold": "abc"}, "threshold"),
        ("/v1/odds-drop/basketball_nba", {"direction": "sideways"}, "direction"),
        ("/v1/odds-drop/curling_moon", {}, "sport_key"),
        ("/v1/odds-drop/multi", {}, "sports"),
        ("/v1/odds-drop/multi", {"sports": "basketball_nba,nope"}, "sports"),
        ("/v1/odds-drop/all", {"bookmakers": "nobook"}, "bookmakers"),
        ("/v1/odds-drop/all", {"kinds": "futures"}, "kinds"),
        ("/v1/sse/odds/basketball_nba", {"heartbeat_s": "31"}, "heartbeat_s"),
        ("/v1/sse/odds/basketball_nba", {"limit": "1001"}, "limit"),
        ("/v1/sse/odds/basketball_nba", {"max_age_s": "0"}, "max_age_s"),
        ("/v1/sse/odds/basketball_nba", {"last_event_id": "x"}, "last_event_id"),
        ("/v1/sse/hot/basketball_nba", {"named_events": "perhaps"}, "named_events"),
        ("/v1/sports/basketball_nba/live/sse", {"heartbeat_s": "0"}, "heartbeat_s"),
    ]
    with trio.fail_after(10):
        async with gateway.client() as c:
            for path, params, param in cases:
                r = await c.get(path, params={**params, "apiKey": key})
                assert r.status_code == 400, (path, params, r.text)
                assert r.json()["param"] == param, r.json()




async def test_tier_gates(gateway: Running) -> None:
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.get("/v1/odds-drop/all", params={"apiKey": gateway.key("pro")})
            assert (r.status_code, r.json()["error"]) == (403, "tier_required")
            r = await c.get("/v1/sports/basketball_nba/live/sse", params={"apiKey": gateway.key("free")})
            assert (r.status_code, r.json()["error"]) == (403, "tier_required")
            async with c.stream("GET", "/v1/sports/basketball_nba/live/sse",
                                params={"apiKey": gateway.key("starter")}) as resp:
                assert resp.status_code == 200
                events = sse_events(resp)
                assert (await next_of(events, "connected")).event == "connected"


async def test_cap_is_shared_and_released(nursery: trio.Nursery, tmp_path: object) -> None:
    config = make_config(tmp_path, tiers={"tiny": {"max_connections": 2, "pbp_sse": True, "odds_streams": True}})
    gw = await start_gateway(nursery, config)
    key = gw.key("tiny")
    try:
        with trio.fail_after(10):
            async with gw.client() as c:
                async with c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key}) as a, \
                        c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": key}) as b:
                    assert a.status_code == b.status_code == 200
                    await next_of(sse_events(a), "connected")
                    r = await c.get("/v1/sports/basketball_nba/live/sse", params={"apiKey": key})
                    assert r.status_code == 429 and r.json()["error"] == "connection_cap"
                    assert r.headers["retry-after"] == "5" and r.json()["limit"] == 2
                status = 0
                for _ in range(50):  # the server notices the disconnects within milliseconds
                    async with c.stream("GET", "/v1/sports/basketball_nba/live/sse", params={"apiKey": key}) as r2:
                        status = r2.status_code
                    if status == 200:
                        break
                    await trio.sleep(0.02)
                assert status == 200
    finally:
        gw.stop.set()
        with trio.fail_after(10):
            await gw.done.wait()


async def test_odds_stream_snapshot_and_updates(gateway: Running) -> None:
    from .helpers import push, quote

    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110), quote(100, outcome="away")])
            async with c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": key}) as resp:
                events = sse_events(resp)
                snap = await next_of(events, "initial_state")
                assert snap.id is None and snap.data["count"] == 1
                assert (snap.data["data"][0]["home_ml"], snap.data["data"][0]["away_ml"]) == (-110, 100)
                await push(c, ingest, [quote(-115)])
                upd = await next_of(events, "odds_update")
    assert upd.id is not None and upd.event is None
    assert upd.data["data"][0]["home_ml"] == -115 and upd.data["data"][0]["action"] == "upsert"


async def test_heartbeat_frames(gateway: Running) -> None:
    key = gateway.key()
    with trio.fail_after(5):
        async with gateway.client() as c, c.stream("GET", "/v1/odds-drop/all",
                                                   params={"apiKey": key, "heartbeat_s": 1}) as resp:
            hb = await next_of(sse_events(resp), "heartbeat")
    assert hb.id is None and hb.data["connections"] >= 1 and hb.data["timestamp"] > 0

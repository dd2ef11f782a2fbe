"""Resume by Last-Event-ID: every missed frame, in order, no gap, no duplicate; else a reset."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import trio
from trio_websocket import open_websocket_url

from gateway.store import Store, prune_log

from .conftest import Running, make_config, start_gateway
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


def _ws_url(base: str, path: str, **params: Any) -> str:
    return "ws" + base.removeprefix("http") + path + "?" + urlencode(params)


def _kind(frame: dict[str, Any]) -> str:
    if frame["type"] == "odds_update":
        return f"odds_update {frame['data'][0]['kind']}"
    if frame["type"] == "odds_drop":
        return f"odds_drop {frame['kind']}"
    if frame["type"] == "stream_status":
        return f"stream_status {frame['status']}"
    return str(frame["type"])


EVERY_KIND = {"odds_update game", "odds_update prop", "odds_drop game", "odds_drop prop", "pbp_event",
              "stream_status source_promoted", "stream_status source_restored"}


async def test_replayed_frames_are_the_frames_live_clients_got(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Every kind of stored frame, as a live client got it and as a resume replays it from the
    log (rebuilt from its compact row): the same JSON text, byte for byte."""
    gw = await start_gateway(nursery, make_config(tmp_path, sources={"stale_after_s": 0.2}))
    key, ingest = gw.key(), gw.key(scopes=("ingest",))
    event = "2026-05-12_Lakers_Warriors"
    started = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # in play

    def q(price: int, **kw: Any) -> dict[str, Any]:
        return quote(price, event=event, commence_time=started, home_team="Los Angeles Lakers — “LAL”", **kw)

    def board(shift: int) -> list[dict[str, Any]]:
        return [q(-110 - shift), q(100 + shift, outcome="away"), q(-110 + shift, market="spreads", point=-3.5),
                q(-110 - shift, market="spreads", outcome="away", point=3.5),
                q(-105, market="totals", outcome="over", point=220.5), q(-115 - shift, market="totals",
                                                                         outcome="under", point=220.5),
                q(-120 - shift, market="player_points", outcome="over", point=24.5, player="Luka Dončić"),
                q(100 + shift, market="player_points", outcome="under", point=24.5, player="Luka Dončić")]

    def play(n: int, source: str, role: str) -> dict[str, Any]:
        return {"match_id": event, "sport_key": "basketball_nba", "source": source, "role": role,
                "event_type": "made_2", "team_or_player_a": "Lakers", "team_or_player_b": "Warriors",
                "score_a": str(2 * n), "score_b": "0", "description": f"play {n}: Dončić layup \\ “and one”",
                "state": {"period": 1 + n % 2, "clock": None if n == 3 else f"1{n}:00"},
                "occurred_at_ms": int(time.time() * 1000)}

    live: dict[int, str] = {}
    with trio.fail_after(20):
        async with gw.client() as c, open_websocket_url(_ws_url(gw.url, "/ws/live/basketball_nba", apiKey=key)) as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            assert json.loads(await ws.get_message())["type"] == "initial_state"
            await push(c, ingest, board(0))
            await push(c, ingest, board(15))  # every price moves: drops, and both rows again
            await push(c, ingest, [play(1, "nba_live", "primary")], path="/v1/ingest/pbp")
            await push(c, ingest, [play(2, "nba_backup", "secondary")], path="/v1/ingest/pbp")  # held
            await trio.sleep(0.3)  # the primary is stale now
            await push(c, ingest, [play(3, "nba_backup", "secondary")], path="/v1/ingest/pbp")  # promoted
            await push(c, ingest, [play(4, "nba_live", "primary")], path="/v1/ingest/pbp")  # restored
            kinds: set[str] = set()
            while not kinds >= EVERY_KIND:
                text = await ws.get_message()
                frame = json.loads(text)
                if "id" in frame:
                    live[frame["id"]] = text
                    kinds.add(_kind(frame))
        replayed: dict[int, str] = {}
        async with open_websocket_url(_ws_url(gw.url, "/ws/live/basketball_nba", apiKey=key, last_event_id=0)) as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            while max(replayed, default=0) < max(live):
                text = await ws.get_message()
                replayed[json.loads(text)["id"]] = text
    assert len(live) >= 12
    for seq, text in live.items():
        assert replayed[seq] == text, seq


async def test_ids_of_a_version_1_database_get_a_reset(nursery: trio.Nursery, tmp_path: Path) -> None:
    """Schema 1 rows are not converted (README, Storage): their ids resume with a reset, and new
    frames continue the ids."""
    from .test_store import make_v1

    config = make_config(tmp_path)
    make_v1(config.db_path(), 40)
    gw = await start_gateway(nursery, config)
    key, ingest = gw.key(), gw.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gw.client() as c:
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-125)])
            reset = await collect_drops(c, key, 1, last_event_id=39)
            missed = await collect_drops(c, key, 1, last_event_id=40)
    assert reset[0]["type"] == "stream_status" and reset[0]["reason"] == "resume_window_exceeded"
    assert missed[0]["type"] == "odds_drop" and missed[0]["new"] == -125 and missed[0]["id"] > 40

"""Issue 15 end to end: steam frames on the drop stream, /v1/steam and webhooks; conflation
and odds formats on SSE and WebSocket streams."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import open_websocket_url

from gateway.core.filters import Catalog
from gateway.core.frames import DROP, STEAM, Frame
from gateway.webhooks.model import compile_filters, events_of

from .conftest import Running
from .helpers import next_of, push, quote, sse_events

SPORT = "basketball_nba"
BOOKS = ("pinnacle", "bet365", "betmgm")


async def test_steam_on_the_drop_stream_and_its_own_route(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110, book=b) for b in BOOKS])
            async with c.stream("GET", f"/v1/steam/{SPORT}", params={"apiKey": key, "bookmakers": "betmgm"}) as s, \
                    c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key, "kinds": "game,steam"}) as both, \
                    c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key}) as plain:
                steam_only, mixed, drops = sse_events(s), sse_events(both), sse_events(plain)
                hello = (await next_of(steam_only, "connected")).data
                assert hello["stream"] == "steam" and hello["filters"]["kinds"] == ["steam"]
                await next_of(mixed, "connected")
                await next_of(drops, "connected")
                for b in BOOKS:
                    await push(c, ingest, [quote(-125, book=b)])
                steam = await next_of(steam_only, "steam")
                seen = [(await next_of(mixed, "odds_drop", "steam")).data["type"] for _ in range(4)]
                await push(c, ingest, [quote(-110, book="pinnacle")])  # a plain drop after it
                last = await next_of(drops, "odds_drop", "steam")
                while last.data["new"] != -110:  # the plain stream never gets steam frames
                    last = await next_of(drops, "odds_drop", "steam")
                    assert last.data["type"] == "odds_drop"
            recent = (await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key, "kinds": "steam"})).json()
    d = steam.data
    assert steam.id is not None and int(steam.id) == d["id"]
    assert (d["books"], d["first_mover"], d["direction"], d["delta_cents"]) == (
        list(BOOKS), "pinnacle", "toward_favorite", 15)
    assert [m["new"] for m in d["moves"]] == [-125, -125, -125] and d["time_spread_ms"] >= 0
    assert seen == ["odds_drop", "odds_drop", "odds_drop", "steam"]
    assert [x["type"] for x in recent] == ["steam"] and recent[0]["id"] == d["id"]


def test_webhook_kinds_steam_matches_steam_frames_only() -> None:
    catalog = Catalog(sports={SPORT}, bookmakers={"pinnacle"}, markets={"h2h"})
    steam = Frame(seq=5, stream=STEAM, payload={
        "type": "steam", "sport_key": SPORT, "event_id": "e", "kind": "game", "market_key": "h2h",
        "books": ["pinnacle"], "delta_cents": 15, "direction": "toward_favorite"})
    drop = Frame(seq=6, stream=DROP, payload={
        "type": "odds_drop", "sport_key": SPORT, "event_id": "e", "bookmaker": "pinnacle", "kind": "game",
        "market_key": "h2h", "delta_cents": 15, "direction": "toward_favorite"})
    normal, plain, _ = compile_filters({}, catalog)
    steamy, only, _ = compile_filters({"kinds": "steam"}, catalog)
    both, mixed, _ = compile_filters({"kinds": ["game", "steam"]}, catalog)
    assert (plain.matches(drop), plain.matches(steam)) == (True, False)
    assert (only.matches(drop), only.matches(steam)) == (False, True)
    assert (mixed.matches(drop), mixed.matches(steam)) == (True, True)
    assert [events_of(f) for f in (normal, steamy, both)] == [["odds_drop"], ["steam"], ["odds_drop", "steam"]]


async def test_odds_format_on_streams(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key, "oddsFormat": "decimal"}) as o, \
                    c.stream("GET", f"/v1/odds-drop/{SPORT}",
                             params={"apiKey": key, "oddsFormat": "probability", "threshold": 20}) as d:
                odds, drops = sse_events(o), sse_events(d)
                hello = (await next_of(odds, "connected")).data
                snap = (await next_of(odds, "initial_state")).data["data"][0]
                await next_of(drops, "connected")
                await push(c, ingest, [quote(-120)])  # 10 cents: under the drop stream's 20
                await push(c, ingest, [quote(-150)])
                update = (await next_of(odds, "odds_update")).data["data"][0]
                drop = (await next_of(drops, "odds_drop")).data
            bad = await c.get(f"/v1/sse/odds/{SPORT}", params={"apiKey": key, "oddsFormat": "fractional"})
    assert hello["filters"]["odds_format"] == "decimal"
    assert snap["home_ml"] == 1.91 and update["home_ml"] == 1.83
    assert (drop["prev"], drop["new"], drop["delta_cents"]) == (0.5455, 0.6, 30)  # thresholds stay in cents
    assert (bad.status_code, bad.json()["param"]) == (400, "oddsFormat")


async def test_conflate_ms_is_checked(gateway: Running) -> None:
    key = gateway.key()
    async with gateway.client() as c:
        for path, params in [(f"/v1/sse/odds/{SPORT}", {"conflate_ms": "120001"}),
                             (f"/v1/sse/odds/{SPORT}", {"conflate_ms": "soon"}),
                             (f"/v1/odds-drop/{SPORT}", {"conflate_ms": "100"}),
                             (f"/v1/sports/{SPORT}/live/sse", {"conflate_ms": "100"})]:
            r = await c.get(path, params={"apiKey": key, **params})
            assert (r.status_code, r.json()["param"]) == (400, "conflate_ms"), (path, params)


def _apply(board: dict[tuple[Any, ...], dict[str, Any]], frame: dict[str, Any]) -> None:
    row = frame["data"][0]
    board[(row["event_id"], row["bookmaker"], row["kind"])] = row


async def test_a_slow_client_at_ten_times_the_conflation_sees_the_same_final_board(gateway: Running) -> None:
    """Pushes every 10 ms; an unconflated client reads everything at once, a conflated one
    (conflate_ms=100, ten times the push interval) reads ten times slower: far fewer frames,
    ids strictly increasing, the same final board; and resuming it from any id it saw is exact."""
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    books = ("pinnacle", "bet365", "betmgm")
    prices = [-110 - 5 * (i % 7) for i in range(40)]
    fast: dict[tuple[Any, ...], dict[str, Any]] = {}
    slow: dict[tuple[Any, ...], dict[str, Any]] = {}
    slow_ids: list[int] = []
    fast_count = 0
    with trio.fail_after(30):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-105, book=b) for b in books])
            async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key}) as a, \
                    c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key, "conflate_ms": 100}) as b:
                ea, eb = sse_events(a), sse_events(b)
                for ev in (await next_of(ea, "initial_state"), await next_of(eb, "initial_state")):
                    for row in ev.data["data"]:
                        fast[(row["event_id"], row["bookmaker"], row["kind"])] = row
                slow.update(fast)
                pushing = trio.current_time()
                for i, p in enumerate(prices):
                    book = books[i % 3]
                    await push(c, ingest, [quote(p, book=book), quote(p + 200, outcome="away", book=book)])
                    await trio.sleep(0.01)
                pushed_in = trio.current_time() - pushing
                final_id = None
                while fast_count < len(prices):
                    ev = await next_of(ea, "odds_update")
                    _apply(fast, ev.data)
                    fast_count += 1
                    final_id = int(ev.data["id"])
                while not slow_ids or slow_ids[-1] < final_id:  # type: ignore[operator]
                    ev = await next_of(eb, "odds_update")
                    await trio.sleep(0.1)  # ten times slower than the pushes
                    slow_ids.append(int(ev.data["id"]))
                    _apply(slow, ev.data)
    assert slow == fast
    assert slow_ids == sorted(set(slow_ids)) and len(slow_ids) <= fast_count
    if pushed_in < 0.8:  # the pushes came about every 10 ms (a loaded machine may be slower): merged
        assert len(slow_ids) < fast_count / 2


async def test_ws_subscribe_sets_conflation_and_format(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            url = gateway.url.replace("http", "ws") + f"/ws/odds/{SPORT}?apiKey={key}"
            async with open_websocket_url(url) as ws:
                async def next_type(*types: str) -> dict[str, Any]:
                    while True:
                        msg: dict[str, Any] = json.loads(await ws.get_message())
                        if msg["type"] in types:
                            return msg

                await next_type("initial_state")
                for bad, field in [({"conflate_ms": -1}, "conflate_ms"), ({"conflate_ms": True}, "conflate_ms"),
                                   ({"oddsFormat": "hongkong"}, "oddsFormat")]:
                    await ws.send_message(json.dumps({"type": "subscribe", **bad}))
                    err = await next_type("error")
                    assert err["error"] == "bad_message" and err["message"].startswith(field), err
                await ws.send_message(json.dumps({"type": "subscribe", "conflate_ms": 200, "oddsFormat": "decimal"}))
                ack = await next_type("subscribed")
                for p in (-115, -120, -125, -130):
                    await push(c, ingest, [quote(p)])
                update = await next_type("odds_update")
    assert (ack["filters"]["conflate_ms"], ack["filters"]["odds_format"]) == (200, "decimal")
    assert update["data"][0]["home_ml"] in (1.87, 1.83, 1.8, 1.77)

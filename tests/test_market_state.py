"""Issue 15 end to end (real server, real clients): market state, line history and CLV, quota headers."""

from __future__ import annotations

import time
from typing import Any

import trio
from trio_websocket import open_websocket_url

from .conftest import Running
from .helpers import next_of, push, quote, sse_events

SPORT = "basketball_nba"
EVENT = "2026-05-12_Lakers_Warriors"


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_suspension_is_a_state_on_every_surface(gateway: Running) -> None:
    """A suspended quote: a resumable market_status frame and an OddsRow with status on the
    odds stream, no drop; REST leaves the price out unless includeSuspended=true; the first
    price after it is compared with the last before it (after_suspension)."""
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110), quote(100, outcome="away")])
            async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key}) as odds, \
                    c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key, "threshold": 1}) as drops:
                o, d = sse_events(odds), sse_events(drops)
                await next_of(o, "initial_state")
                await next_of(d, "connected")
                await push(c, ingest, [quote(-110, status="suspended", reason="goal"),
                                       {**quote(0, outcome="away", status="suspended"), "price": None}])
                status = await next_of(o, "market_status")
                row = (await next_of(o, "odds_update")).data["data"][0]  # the state change, then the row
                r = await c.get(f"/v4/sports/{SPORT}/odds", params={"apiKey": key, "oddsFormat": "american"})
                assert r.json() == []  # suspended prices are left out
                r = await c.get(f"/v4/sports/{SPORT}/odds", params={"apiKey": key, "oddsFormat": "american",
                                                                    "includeSuspended": "true"})
                outcomes = r.json()[0]["bookmakers"][0]["markets"][0]["outcomes"]
                assert {(x["price"], x["status"]) for x in outcomes} == {(-110, "suspended"), (100, "suspended")}
                await push(c, ingest, [quote(-135), quote(115, outcome="away")])
                drop = (await next_of(d, "odds_drop")).data
                reopened = await next_of(o, "market_status")
    s = status.data
    assert status.id is not None and int(status.id) == s["id"]
    assert (s["event_id"], s["bookmaker"], s["market_key"], s["outcome"], s["status"], s["reason"]) == (
        EVENT, "pinnacle", "h2h", None, "suspended", "goal")  # both outcomes: one frame for the market
    assert (row["status"], row["suspended_markets"], row["available"], row["home_ml"]) == (
        "suspended", ["h2h"], False, -110)
    assert (drop["prev"], drop["new"], drop["after_suspension"]) == (-110, -135, True)
    assert reopened.data["status"] == "open"


async def test_market_status_frames_resume_exactly(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key}) as resp:
                events = sse_events(resp)
                await next_of(events, "initial_state")
                await push(c, ingest, [quote(-110)])  # no change: nothing
                await push(c, ingest, [quote(-120)])
                first = await next_of(events, "odds_update")
            await push(c, ingest, [quote(-120, status="suspended")])
            await push(c, ingest, [quote(-125)])
            async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"apiKey": key},
                                headers={"Last-Event-ID": str(first.id)}) as resp:
                events = sse_events(resp)
                got = []
                while len(got) < 4:
                    ev = await next_of(events, "odds_update", "market_status")
                    got.append((ev.data["type"], ev.data.get("status") or ev.data["data"][0]["status"]))
    assert got == [("market_status", "suspended"), ("odds_update", "suspended"), ("market_status", "open"),
                   ("odds_update", "open")]


async def test_ws_live_carries_market_status(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    live = quote(-110, commence_time=now_ms() - 60_000)
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [live, {**live, "outcome": "away", "price": 100}])
            url = gateway.url.replace("http", "ws") + f"/ws/live/{SPORT}?apiKey={key}"
            async with open_websocket_url(url) as ws:
                import json
                while json.loads(await ws.get_message())["type"] != "initial_state":
                    pass
                await push(c, ingest, [{**live, "status": "suspended"}])
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["type"] == "market_status":
                        break
    assert (msg["outcome"], msg["status"]) == ("home", "suspended")  # one outcome of two known: per outcome


async def test_bad_status_rows_are_rejected_naming_the_field(gateway: Running) -> None:
    ingest = gateway.key(scopes=("ingest",))
    async with gateway.client() as c:
        r = await c.post("/v1/ingest/odds", json=[quote(-110, status="paused"), {**quote(0), "price": None}],
                         headers={"X-API-Key": ingest})
    assert r.status_code == 422
    reasons = [x["error"] for x in r.json()["rejected"]]
    assert reasons[0].startswith("status:") and reasons[1].startswith("price: required")


async def _history(c: Any, key: str, **params: Any) -> Any:
    return await c.get(f"/v1/sports/{SPORT}/events/{EVENT}/history", params={"apiKey": key, **params})


async def test_line_history_open_current_close(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    start = now_ms() - 3_600_000  # started an hour ago
    t0 = start - 7_200_000
    rows = [quote(-110, commence_time=start, observed_at_ms=t0),
            quote(-115, commence_time=start, observed_at_ms=t0 + 1000),
            quote(-120, commence_time=start, observed_at_ms=start - 5000),  # the closing line
            quote(-150, commence_time=start, observed_at_ms=start + 60_000),  # in play
            quote(-150, commence_time=start, observed_at_ms=start + 61_000, status="suspended"),
            quote(-110, commence_time=start, observed_at_ms=t0, book="fanduel"),
            quote(-130, commence_time=start, observed_at_ms=start - 1000, book="fanduel")]
    async with gateway.client() as c:
        for row in rows:
            await push(c, ingest, [row])
        r = await _history(c, key)
        assert r.status_code == 200, r.text
        body = r.json()
        pin = next(s for s in body["series"] if s["bookmaker"] == "pinnacle")
        assert [(x["price"], x.get("status")) for x in pin["changes"]] == [
            (-110, None), (-115, None), (-120, None), (-150, None), (None, "suspended")]
        assert (pin["open"]["price"], pin["close"]["price"], pin["current"]["status"]) == (-110, -120, "suspended")
        assert body["started"] is True and body["count"] == 7
        # filters, format and the time range
        r = await _history(c, key, bookmakers="fanduel", oddsFormat="decimal", **{"from": start - 2000})
        only = r.json()["series"]
        assert len(only) == 1 and [x["price"] for x in only[0]["changes"]] == [1.77]
        assert only[0]["open"]["price"] == 1.91 and only[0]["close"]["price"] == 1.77
        # clv: a bet at -110 at pinnacle against its close -120 and fanduel's -130
        r = await c.get(f"/v1/sports/{SPORT}/events/{EVENT}/clv", params={
            "apiKey": key, "bookmaker": "pinnacle", "market": "h2h", "outcome": "home", "price": -110,
            "time": t0, "reference": "fanduel"})
        assert r.status_code == 200, r.text
        clv = r.json()
        assert (clv["book"]["close_price"], clv["book"]["clv_cents"]) == (-120, 10)
        assert (clv["reference"]["close_price"], clv["reference"]["clv_cents"]) == (-130, 20)
        assert clv["book"]["clv_probability"] > 0 and clv["provisional"] is False


async def test_history_keeps_every_change_of_one_millisecond_in_order(gateway: Running) -> None:
    """Two changes of one cell in the same millisecond (one request, or two fast ones) are
    both kept, 1 ms apart; a change stamped before the latest comes after it, as the board
    applied it (its price is the current one)."""
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    t = now_ms() - 60_000
    async with gateway.client() as c:
        await push(c, ingest, [quote(-110, observed_at_ms=t), quote(-120, observed_at_ms=t)])
        await push(c, ingest, [quote(-130, observed_at_ms=t)])
        await push(c, ingest, [quote(-140, observed_at_ms=t - 5000)])
        r = await _history(c, key)
        assert r.status_code == 200, r.text
        pin = next(s for s in r.json()["series"] if s["bookmaker"] == "pinnacle")
        assert [(x["t"], x["price"]) for x in pin["changes"]] == [(t, -110), (t + 1, -120), (t + 2, -130),
                                                                  (t + 3, -140)]
        assert pin["current"]["price"] == -140


async def test_history_and_clv_bad_input(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    async with gateway.client() as c:
        await push(c, ingest, [quote(-110)])
        r = await c.get(f"/v1/sports/{SPORT}/events/nope/history", params={"apiKey": key})
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        cases = [({"from": now_ms(), "to": now_ms() - 1000}, "from"),
                 ({"from": now_ms() - 15 * 86_400_000}, "from"),  # past the 14-day window
                 ({"to": "yesterday"}, "to"), ({"oddsFormat": "fractional"}, "oddsFormat"),
                 ({"bookmakers": "nobody"}, "bookmakers")]
        for params, param in cases:
            r = await _history(c, key, **params)
            assert (r.status_code, r.json()["param"]) == (400, param), (params, r.text)
        base = {"apiKey": key, "bookmaker": "pinnacle", "market": "h2h", "outcome": "home", "price": -110}
        for change, param in [({"price": "x"}, "price"), ({"outcome": "over"}, "outcome"),
                              ({"bookmaker": None}, "bookmaker"), ({"time": now_ms()}, "time"),
                              ({"price": 50}, "price"), ({"reference": "nobody"}, "reference")]:
            p = {k: v for k, v in {**base, **change}.items() if v is not None}
            r = await c.get(f"/v1/sports/{SPORT}/events/{EVENT}/clv", params=p)
            assert (r.status_code, r.json()["param"]) == (400, param), (change, r.text)


async def test_recent_drops_from_to(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    async with gateway.client() as c:
        await push(c, ingest, [quote(-110)])
        await push(c, ingest, [quote(-130)])
        await trio.sleep(0.01)  # a push answers within the millisecond it was stamped in: `from` must be after it
        middle = now_ms()
        await trio.sleep(0.01)
        await push(c, ingest, [quote(-150)])
        every = (await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key})).json()
        later = (await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key, "from": middle})).json()
        earlier = (await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key, "to": middle})).json()
        bad = await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key, "from": middle, "to": middle - 1})
        old = await c.get(f"/v1/odds-drop/{SPORT}/recent", params={"apiKey": key, "from": middle - 49 * 3_600_000})
    assert [d["new"] for d in every] == [-150, -130]
    assert [d["new"] for d in later] == [-150] and [d["new"] for d in earlier] == [-130]
    assert (bad.status_code, bad.json()["param"]) == (400, "from")
    assert (old.status_code, old.json()["param"]) == (400, "from")


async def test_quota_headers(gateway: Running) -> None:
    key = gateway.key("free")
    async with gateway.client() as c:
        v1 = await c.get("/v1/sports", params={"apiKey": key})
        v4 = await c.get("/v4/sports", params={"apiKey": key})
        bad = await c.get(f"/v4/sports/{SPORT}/odds", params={"apiKey": key, "oddsFormat": "x"})
        anonymous = await c.get("/v1/sports")
    assert v1.headers["X-RateLimit-Limit"] == "60"
    assert int(v1.headers["X-RateLimit-Remaining"]) == 9 and "x-requests-remaining" not in v1.headers
    assert int(v4.headers["x-requests-remaining"]) == 8 and v4.headers["x-requests-used"] == "2"
    assert int(v4.headers["X-RateLimit-Reset"]) >= 1
    assert bad.status_code == 400 and bad.headers["x-requests-used"] == "3"  # errors count and say so
    assert anonymous.status_code == 401 and "X-RateLimit-Limit" not in anonymous.headers


async def test_history_answers_are_bounded(gateway: Running, monkeypatch: Any) -> None:
    import gateway.web.history as history

    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    monkeypatch.setattr(history, "MAX_CHANGES", 2)
    async with gateway.client() as c:
        for price in (-110, -120, -130):
            await push(c, ingest, [quote(price)])
        r = await _history(c, key)
        assert (r.status_code, r.json()["param"]) == (400, "from") and "narrow" in r.json()["message"]
        r = await _history(c, key, **{"from": now_ms() - 1})  # a narrower range fits
        assert r.status_code == 200

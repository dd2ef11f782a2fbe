"""WebSocket streams end to end: a real server, trio-websocket (and `websockets`) clients."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from gateway import testing
from gateway.config import Config
from gateway.hub import SLOW_CONSUMER
from gateway.sessions import make_session

from .conftest import Running, make_config, start_gateway
from .helpers import push, quote, sse_events

SECRET = "test-session-secret"
NBA = "/ws/odds/basketball_nba"
A, B = "2026-05-12_Lakers_Warriors", "2026-05-12_Celtics_Knicks"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, server={"session_secret": SECRET},
                       tiers={"tiny": {"max_connections": 1, "pbp_sse": True, "odds_streams": True}})


def url(base: str, path: str, **params: Any) -> str:
    return "ws" + base.removeprefix("http") + path + ("?" + urlencode(params, doseq=True) if params else "")


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await ws.get_message())
    return msg


async def next_type(ws: WebSocketConnection, *types: str) -> dict[str, Any]:
    while True:
        msg = await recv(ws)
        if msg["type"] in types:
            return msg


async def close_code(ws: WebSocketConnection) -> tuple[int, list[dict[str, Any]]]:
    seen = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            seen.append(await recv(ws))
    return info.value.reason.code, seen


async def opened(ws: WebSocketConnection) -> dict[str, Any]:
    """Read `connected` and `initial_state`; return the snapshot."""
    assert (await recv(ws))["type"] == "connected"
    return await next_type(ws, "initial_state")


async def test_connected_snapshot_then_updates(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
                hello = await recv(ws)
                assert hello["type"] == "connected" and hello["tier"] == "enterprise"
                assert hello["transport"] == "ws" and hello["sport_key"] == "basketball_nba"
                snap = await recv(ws)
                assert snap["type"] == "initial_state" and snap["count"] == 1
                assert snap["data"][0]["home_ml"] == -110
                await push(c, ingest, [quote(-125)])
                update = await next_type(ws, "odds_update")
    assert update["data"][0]["home_ml"] == -125 and isinstance(update["id"], int)


async def test_subprotocol_key_is_echoed_on_v1_path(gateway: Running) -> None:
    key = gateway.key()
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, "/v1" + NBA), subprotocols=["json", f"apikey.{key}"]) as ws:
            assert ws.subprotocol == f"apikey.{key}"
            assert (await recv(ws))["type"] == "connected"


@pytest.mark.parametrize("form", ["apiKey", "api_key", "X-API-Key", "Bearer", "header-wins"])
async def test_every_key_form_and_heartbeat(gateway: Running, form: str) -> None:
    key = gateway.key("business")
    params: dict[str, Any] = {"heartbeat_s": 1} if form == "Bearer" else {}
    headers: list[tuple[bytes, bytes]] = []
    if form in ("apiKey", "api_key"):
        params[form] = key
    elif form == "Bearer":
        headers.append((b"Authorization", f"Bearer {key}".encode()))
    else:
        headers.append((b"X-API-Key", key.encode()))
        if form == "header-wins":
            params["apiKey"] = "gw_wrong"
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, NBA, **params), extra_headers=headers) as ws:
            assert (await recv(ws))["tier"] == "business"
            assert ws.subprotocol is None
            if form == "Bearer":
                beat = await next_type(ws, "heartbeat")
                assert beat["connections"] >= 1 and "id" not in beat


async def test_subscribe_narrows_to_one_event_and_acks(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c, open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
            await opened(ws)
            await ws.send_message(json.dumps({"type": "subscribe", "event_id": A}))
            ack = await next_type(ws, "subscribed")
            assert ack["event_id"] == A and ack["filters"]["event_id"] == [A] and ack["timestamp"] > 0
            await push(c, ingest, [quote(-110, event=B)])
            await push(c, ingest, [quote(-115, event=A)])
            assert (await next_type(ws, "odds_update"))["data"][0]["event_id"] == A
            await ws.send_message(json.dumps({"type": "subscribe", "event_id": B}))  # replaces A
            assert (await next_type(ws, "subscribed"))["event_id"] == B
            await push(c, ingest, [quote(-120, event=A)])
            await push(c, ingest, [quote(-120, event=B)])
            assert (await next_type(ws, "odds_update"))["data"][0]["event_id"] == B


async def test_subscribe_bookmakers_then_unsubscribe(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110, book="fanduel")])  # fanduel joins the catalog
            async with open_websocket_url(url(gateway.url, NBA, apiKey=key, markets="h2h")) as ws:
                await opened(ws)
                await ws.send_message(json.dumps({"type": "subscribe", "event_id": A, "bookmakers": ["fanduel"],
                                                  "sport": "x", "snapshot": True}))
                ack = await next_type(ws, "subscribed")
                snap = await recv(ws)
                assert snap["type"] == "initial_state" and [r["bookmaker"] for r in snap["data"]] == ["fanduel"]
                assert ack["filters"]["bookmakers"] == ["fanduel"] and ack["filters"]["markets"] == ["h2h"]
                assert ack["ignored"] == ["sport"]
                await push(c, ingest, [quote(-111, book="pinnacle")])
                await push(c, ingest, [quote(-112, book="fanduel")])
                assert (await next_type(ws, "odds_update"))["data"][0]["bookmaker"] == "fanduel"
                await ws.send_message(json.dumps({"type": "unsubscribe"}))
                gone = await next_type(ws, "unsubscribed")
                assert gone["filters"]["event_id"] is None and gone["filters"]["bookmakers"] == ["fanduel"]
                await push(c, ingest, [quote(-113, book="pinnacle", event=B)])
                await push(c, ingest, [quote(-114, book="fanduel", event=B)])
                row = (await next_type(ws, "odds_update"))["data"][0]
                assert (row["bookmaker"], row["event_id"]) == ("fanduel", B)
                await ws.send_message(json.dumps({"type": "subscribe", "bookmakers": None}))
                assert (await next_type(ws, "subscribed"))["filters"]["bookmakers"] is None


async def test_ping_pong_and_malformed_messages_keep_the_socket(gateway: Running) -> None:
    key = gateway.key()
    bad = ["not json", "[1, 2]", '"text"', json.dumps({"no": "type"}), json.dumps({"type": "launch"}),
           json.dumps({"type": "resume"}), json.dumps({"type": "subscribe", "event_id": 5.5}),
           json.dumps({"type": "subscribe", "bookmakers": ["nobook"]}),
           json.dumps({"type": "subscribe", "kinds": "futures"}), json.dumps({"type": "subscribe", "markets": []})]
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
            await opened(ws)
            for text in bad:
                await ws.send_message(text)
                err = await next_type(ws, "error")
                assert err["error"] == "bad_message" and err["message"], text
            await ws.send_message(json.dumps({"type": "ping"}))
            pong = await next_type(ws, "pong")
    assert abs(pong["timestamp"] - time.time() * 1000) < 5000


@pytest.mark.parametrize(("tier", "query", "code", "error"), [
    (None, {}, 4003, "missing_key"),
    (None, {"apiKey": "gw_not_a_key"}, 1008, "invalid_key"),
    ("free", {}, 4001, "tier_required"),
    ("pro", {}, 4001, "tier_required"),
    ("business", {"bookmakers": "nobook"}, 1008, "invalid_param"),
    ("business", {"heartbeat_s": "99"}, 1008, "invalid_param"),
])
async def test_refusals_accept_then_close(gateway: Running, tier: str | None, query: dict[str, str], code: int,
                                         error: str) -> None:
    params = dict(query)
    if tier is not None:
        params["apiKey"] = gateway.key(tier)
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, NBA, **params)) as ws:
            got, frames = await close_code(ws)
    assert got == code and frames[-1]["type"] == "error" and frames[-1]["error"] == error
    if error == "invalid_param":
        assert frames[-1]["param"] in ("bookmakers", "heartbeat_s")


async def test_unknown_sport_names_the_param(gateway: Running) -> None:
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, "/ws/odds/curling_xx", apiKey=gateway.key())) as ws:
            code, frames = await close_code(ws)
    assert code == 1008 and frames[-1]["param"] == "sport_key"


async def test_connection_cap_is_shared_with_sse(gateway: Running) -> None:
    key = gateway.key("tiny")
    with trio.fail_after(10):
        async with gateway.client() as c:
            async with c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": key}) as resp:
                assert resp.status_code == 200
                await anext(sse_events(resp))
                async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
                    code, frames = await close_code(ws)
                assert code == 4002 and frames[-1]["error"] == "connection_cap"
            async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:  # the SSE slot is free
                await opened(ws)
                r = await c.get("/v1/sse/odds/basketball_nba", params={"apiKey": key})
                assert r.status_code == 429
                async with open_websocket_url(url(gateway.url, NBA), subprotocols=[f"apikey.{key}"]) as ws2:
                    assert (await close_code(ws2))[0] == 4002
        with trio.move_on_after(1):  # the WS slot is released once the socket closed
            while True:
                async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
                    if (await recv(ws))["type"] == "connected":
                        return
                await trio.sleep(0.05)
    raise AssertionError("the WebSocket slot was not released")


async def ids_of_updates(ws: WebSocketConnection, n: int) -> list[int]:
    return [(await next_type(ws, "odds_update"))["id"] for _ in range(n)]


async def test_resume_on_connect_replays_exactly_the_gap(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            async with open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
                await opened(ws)
                await push(c, ingest, [quote(-110)])
                await push(c, ingest, [quote(-111)])
                seen = await ids_of_updates(ws, 2)
            await push(c, ingest, [quote(-112)])
            await push(c, ingest, [quote(-113, event=B)])
            async with open_websocket_url(url(gateway.url, NBA, apiKey=key, last_event_id=seen[-1])) as ws:
                assert (await recv(ws))["type"] == "connected"
                missed = [await recv(ws) for _ in range(2)]
                await push(c, ingest, [quote(-114)])
                live = await recv(ws)
    assert [m["data"][0]["home_ml"] for m in missed] == [-112, -113]
    assert [m["id"] for m in missed] == sorted(m["id"] for m in missed) and missed[0]["id"] > seen[-1]
    assert live["type"] == "odds_update" and live["data"][0]["home_ml"] == -114 and live["id"] > missed[-1]["id"]


async def test_resume_message_restarts_from_the_id(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c, open_websocket_url(url(gateway.url, NBA, apiKey=key)) as ws:
            await opened(ws)
            for price in (-110, -111, -112):
                await push(c, ingest, [quote(price)])
            first, second, third = await ids_of_updates(ws, 3)
            await ws.send_message(json.dumps({"type": "resume", "last_event_id": first}))
            hello = await next_type(ws, "connected")
            assert hello["resumed_from"] == first
            replayed = [await recv(ws) for _ in range(2)]
            await push(c, ingest, [quote(-113)])
            live = await recv(ws)
            await ws.send_message(json.dumps({"type": "resume", "last_event_id": 10**9}))
            await next_type(ws, "connected")
            reset = await recv(ws)
    assert [m["id"] for m in replayed] == [second, third]
    assert live["type"] == "odds_update" and live["id"] > third and live["data"][0]["home_ml"] == -113
    assert reset["type"] == "stream_status" and reset["reason"] == "unknown_id"


def live_quote(price: int, **kw: Any) -> dict[str, Any]:
    started = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return quote(price, event="live_Lakers_Warriors", commence_time=started, **kw)


async def login(gateway: Running, key: str) -> str:
    async with gateway.client() as c:
        r = await c.post("/v1/session", json={"api_key": key})
        assert r.status_code == 200, r.text
        return r.cookies["gw_session"]


async def test_live_with_session_cookie(gateway: Running) -> None:
    ingest = gateway.key(scopes=("ingest",))
    cookie = await login(gateway, gateway.key("business"))
    headers = [(b"Cookie", f"gw_session={cookie}".encode()), (b"Origin", gateway.url.encode())]
    play = {"match_id": "live_Lakers_Warriors", "sport_key": "basketball_nba", "source": "nba_live",
            "event_type": "made_3", "team_or_player_a": "Lakers", "team_or_player_b": "Warriors", "score_a": "3",
            "score_b": "0", "state": {"period": 1, "clock": "PT11:40"}, "occurred_at_ms": int(time.time() * 1000)}
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [live_quote(-110), quote(-110)])
            async with open_websocket_url(url(gateway.url, "/ws/live/basketball_nba"), extra_headers=headers) as ws:
                hello = await recv(ws)
                assert hello["type"] == "connected" and hello["auth"] == "session" and hello["stream"] == "live"
                snap = await recv(ws)
                assert [r["event_id"] for r in snap["data"]] == ["live_Lakers_Warriors"] and snap["live_state"] == []
                await push(c, ingest, [quote(-130)])  # pre-game event: not in-play, not sent
                await push(c, ingest, [live_quote(-125)])
                got = [await recv(ws) for _ in range(2)]
                await push(c, ingest, [play], path="/v1/ingest/pbp")
                pbp = await next_type(ws, "pbp_event")
    assert {m["type"] for m in got} == {"odds_update", "odds_drop"}
    assert all(m.get("event_id", m.get("data", [{}])[0].get("event_id")) == "live_Lakers_Warriors" for m in got)
    assert pbp["score_a"] == "3" and isinstance(pbp["id"], int)


async def test_live_types_selects_frame_kinds(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [live_quote(-110)])
            async with open_websocket_url(url(gateway.url, "/ws/live/basketball_nba", apiKey=key,
                                              types="odds_drop")) as ws:
                await next_type(ws, "initial_state")
                await push(c, ingest, [live_quote(-125)])
                await push(c, ingest, [live_quote(-140)])
                got = [await recv(ws) for _ in range(2)]
            async with open_websocket_url(url(gateway.url, "/ws/live/basketball_nba", apiKey=key,
                                              types="odds_drop,nope")) as ws:
                code, frames = await close_code(ws)
    assert [(m["type"], m["new"]) for m in got] == [("odds_drop", -125), ("odds_drop", -140)]
    assert code == 1008 and frames[-1]["param"] == "types"


@pytest.mark.parametrize("origin", ["http://evil.example", None, "https://127.0.0.1"])
async def test_live_cookie_needs_same_origin(gateway: Running, origin: str | None) -> None:
    cookie = await login(gateway, gateway.key("business"))
    headers = [(b"Cookie", f"gw_session={cookie}".encode())]
    if origin:
        headers.append((b"Origin", origin.encode()))
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, "/ws/live/basketball_nba"), extra_headers=headers) as ws:
            code, frames = await close_code(ws)
    assert code == 1008 and frames[-1]["error"] == "forbidden_origin"


async def live_close(gateway: Running, token: str) -> tuple[int, list[dict[str, Any]]]:
    headers = [(b"Cookie", f"gw_session={token}".encode()), (b"Origin", gateway.url.encode())]
    async with open_websocket_url(url(gateway.url, "/v1/ws/live/basketball_nba"), extra_headers=headers) as ws:
        return await close_code(ws)


async def test_live_cookie_expired_is_4001(gateway: Running) -> None:
    gateway.key("business")
    expired = make_session(SECRET.encode(), key_id=1, key_name="business-plain", tier="business",
                           now_s=int(time.time()) - 7200, ttl_s=3600)
    with trio.fail_after(10):
        code, frames = await live_close(gateway, expired)
    assert code == 4001 and frames[-1]["error"] == "session_expired"


async def test_live_cookie_of_a_low_tier_key_is_4001(gateway: Running) -> None:
    with trio.fail_after(10):
        code, frames = await live_close(gateway, await login(gateway, gateway.key("pro")))
    assert code == 4001 and frames[-1]["error"] == "tier_required"


async def test_live_without_key_or_cookie_is_4003(gateway: Running) -> None:
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, "/ws/live/basketball_nba")) as ws:
            assert (await close_code(ws))[0] == 4003


async def test_session_endpoints(gateway: Running) -> None:
    key = gateway.key("business")
    with trio.fail_after(10):
        async with gateway.client() as c:
            assert (await c.get("/v1/session")).json()["error"] == "missing_session"
            assert (await c.post("/v1/session", json={"api_key": "gw_nope"})).status_code == 401
            r = await c.post("/v1/session", json={"api_key": key}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403 and r.json()["error"] == "forbidden_origin"
            r = await c.post("/v1/session", data={"api_key": key})
            assert r.status_code == 200 and r.json()["tier"] == "business"
            assert r.json()["expires_at"] > time.time() * 1000
            cookie = r.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
            assert "secure" not in cookie and "max-age=43200" in cookie
            me = await c.get("/v1/session")
            assert me.status_code == 200 and me.json()["name"] == "business-plain"
            forged = c.cookies["gw_session"][:-2] + ("xx" if not c.cookies["gw_session"].endswith("xx") else "yy")
            async with gateway.client() as other:
                r = await other.get("/v1/session", headers={"Cookie": f"gw_session={forged}"})
                assert r.status_code == 401 and r.json()["error"] == "invalid_session"
            out = await c.delete("/v1/session")
            assert out.status_code == 200 and "gw_session=" in out.headers["set-cookie"]


async def test_shutdown_closes_1001(gateway: Running) -> None:
    with trio.fail_after(10):
        async with open_websocket_url(url(gateway.url, NBA, apiKey=gateway.key())) as ws:
            await opened(ws)
            gateway.stop.set()
            code, frames = await close_code(ws)
    assert code == 1001 and frames[-1]["type"] == "stream_status" and frames[-1]["status"] == "closing"


async def test_slow_consumer_cut_closes_4008(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with (testing.open_gateway(testing.gateway_config(tmp_path)) as gw,
                    open_websocket_url(url(gw.base_url, NBA, apiKey=gw.key)) as ws):
            await opened(ws)
            for sub in [s for s in gw.gateway.hub._all if s.transport == "ws"]:
                gw.gateway.hub.cut(sub, SLOW_CONSUMER)  # what publish does when its buffer is full
            code, frames = await close_code(ws)
    assert code == 4008 and frames[-1]["error"] == "slow_consumer"


async def raw_silent_client(base: str, key: str) -> tuple[int, float]:
    """Handshake by hand, then never answer pings: (close code, seconds until it came)."""
    host, port = base.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all((f"GET {NBA}?apiKey={key} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    started, data = trio.current_time(), b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    assert data.startswith(b"HTTP/1.1 101"), data
    data = data.split(b"\r\n\r\n", 1)[1]
    while True:
        while len(data) < 2 or len(data) < 2 + (data[1] & 0x7F if data[1] & 0x7F < 126 else 2):
            data += await stream.receive_some(65536)
        n = data[1] & 0x7F
        head = 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        while len(data) < head + n:
            data += await stream.receive_some(65536)
        opcode, payload, data = data[0] & 0x0F, data[head:head + n], data[head + n:]
        if opcode == 0x8:
            await stream.aclose()
            return int.from_bytes(payload[:2], "big"), trio.current_time() - started


async def test_client_that_ignores_pings_is_closed_1011(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, streams={"ws_ping_interval_s": 0.2, "ws_idle_timeout_s": 0.8})
    running = await start_gateway(nursery, cfg)
    key = running.key()
    try:
        with trio.fail_after(10):
            code, after = await raw_silent_client(running.url, key)
            assert code == 1011 and 0.7 < after < 3
            async with open_websocket_url(url(running.url, NBA, apiKey=key)) as ws:  # answers pings itself
                await opened(ws)
                await trio.sleep(1.5)
                await ws.send_message(json.dumps({"type": "ping"}))
                assert (await next_type(ws, "pong"))["type"] == "pong"
    finally:
        running.stop.set()
        await running.done.wait()


def seed_python_example(ws_base: str, key: str) -> list[dict[str, Any]]:
    """The seed page's "WebSocket example: Python", unmodified but for the URL, stopping early."""
    import websockets

    seen: list[dict[str, Any]] = []

    async def main() -> None:
        url = f"{ws_base}/ws/odds/basketball_nba?apiKey={key}"
        async with websockets.connect(url) as ws:
            # Optional: subscribe to one game
            await ws.send(json.dumps({"type": "subscribe", "event_id": A}))
            async for msg in ws:
                seen.append(json.loads(msg))
                if {"subscribed", "initial_state"} <= {m["type"] for m in seen}:
                    break

    asyncio.run(main())
    return seen


async def test_seed_python_websockets_example(gateway: Running) -> None:
    key = gateway.key("business")
    with trio.fail_after(10):
        seen = await trio.to_thread.run_sync(seed_python_example, "ws" + gateway.url.removeprefix("http"), key)
    assert seen[0]["type"] == "connected" and sorted(m["type"] for m in seen[1:]) == ["initial_state", "subscribed"]
    assert next(m for m in seen if m["type"] == "subscribed")["event_id"] == A


async def test_a_client_past_its_message_budget_is_told_then_closed_1008() -> None:
    """50 clients subscribing with snapshots in a loop took REST from 9 to ~500 ms: each
    connection now has a message budget (20/s, bursts of 60; a snapshot counts 10)."""
    from gateway.testing import open_gateway

    async with open_gateway() as gw:
        with trio.fail_after(10):
            async with open_websocket_url(f"{gw.ws_url}/ws/odds/basketball_nba?apiKey={gw.key}") as ws:
                await ws.get_message()  # connected
                await ws.get_message()  # initial_state
                for _ in range(10):  # within the budget: answered
                    await ws.send_message('{"type":"ping"}')
                    assert json.loads(await ws.get_message())["type"] == "pong"
                for _ in range(10):
                    await ws.send_message('{"type":"subscribe","event_id":"x","snapshot":true}')
                frames = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        frames.append(json.loads(await ws.get_message()))
        assert frames[-1]["error"] == "bad_message" and "too many messages" in frames[-1]["message"]
        assert closed.value.reason.code == 1008
        assert not gw.gateway.caps.active

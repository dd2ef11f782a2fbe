"""Revoking a key ends what it holds (issue 13.3): its SSE and WebSocket streams end within
2 s with a final `key_revoked` frame (WebSocket: then close 4001), live, detached or still
replaying; its slots are freed and REST answers 401. A key moved to a tier without a stream
loses that stream the same way (`tier_required`), and keeps the ones its tier still has.
Keys are revoked and moved the way the CLI does it: another connection to the database."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from gateway.auth import revoke_key, set_tier
from gateway.testing import GatewayHandle, open_gateway

from .helpers import next_of, sse_events


def _revoke(gw: GatewayHandle, name: str) -> None:
    gw.gateway.store.write_fn_own_connection(lambda c: revoke_key(c, name))


def _move(gw: GatewayHandle, name: str, tier: str) -> None:
    gw.gateway.store.write_fn_own_connection(lambda c: set_tier(c, name, tier, gw.gateway.config.tiers))


async def _sse_until_end(c: httpx.AsyncClient, path: str, params: dict[str, Any], started: trio.Event) -> list[dict]:
    frames: list[dict[str, Any]] = []
    async with c.stream("GET", path, params=params) as resp:
        assert resp.status_code == 200
        async for ev in sse_events(resp):
            frames.append(ev.data)
            if ev.data["type"] == "connected":
                started.set()
    return frames


@pytest.mark.parametrize("path", ["/v1/odds-drop/all", "/v1/sse/odds/basketball_nba",
                                  "/v1/sports/basketball_nba/live/sse"])
async def test_revoking_a_key_ends_its_sse_streams(path: str) -> None:
    async with open_gateway() as gw:
        key = gw.create_key("business", name="bot")
        await gw.move("e1", "pinnacle", "h2h", "home", -110, -130)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=httpx.Timeout(10, read=30)) as c:
            started = trio.Event()
            result: list[list[dict[str, Any]]] = []
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    async def run() -> None:
                        result.append(await _sse_until_end(c, path, {"apiKey": key, "heartbeat_s": 1}, started))
                    nursery.start_soon(run)
                    await started.wait()
                    await trio.sleep(0.3)  # live (and detached)
                    _revoke(gw, "bot")
                    revoked_at = trio.current_time()
            assert trio.current_time() - revoked_at < 2.5
            assert result[0][-1]["type"] == "error" and result[0][-1]["error"] == "key_revoked"
            assert not gw.gateway.caps.active
            assert (await c.get("/v1/sports", params={"apiKey": key})).status_code == 401


async def test_a_replay_in_progress_ends_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.streaming as streaming

    monkeypatch.setattr(streaming, "REPLAY_PAGE", 5)  # a long replay: many small pages
    async with open_gateway() as gw:
        key = gw.create_key("business", name="resumer")
        for i in range(60):
            await gw.move(f"e{i}", "pinnacle", "h2h", "home", -110, -130)
        real_read = gw.gateway.store.read

        async def slow_read(fn: Any) -> Any:
            await trio.sleep(0.1)
            return await real_read(fn)

        monkeypatch.setattr(gw.gateway.store, "read", slow_read)
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=httpx.Timeout(10, read=30)) as c:
            started = trio.Event()
            result: list[list[dict[str, Any]]] = []
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    async def run() -> None:
                        result.append(await _sse_until_end(c, "/v1/odds-drop/all",
                                                           {"apiKey": key, "last_event_id": 1}, started))
                    nursery.start_soon(run)
                    await started.wait()
                    await trio.sleep(0.3)
                    _revoke(gw, "resumer")
        frames = result[0]
        assert 0 < sum(f["type"] == "odds_drop" for f in frames) < 60  # it was replaying
        assert frames[-1]["error"] == "key_revoked"
        assert not gw.gateway.caps.active


async def test_revoking_a_key_closes_its_websockets_with_4001() -> None:
    async with open_gateway() as gw:
        key = gw.create_key("business", name="wsbot")
        with trio.fail_after(10):
            async with open_websocket_url(f"{gw.ws_url}/ws/odds/basketball_nba?apiKey={key}") as ws:
                assert json.loads(await ws.get_message())["type"] == "connected"
                await ws.get_message()  # initial_state
                _revoke(gw, "wsbot")
                frames = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        frames.append(json.loads(await ws.get_message()))
        assert frames[-1]["error"] == "key_revoked"
        assert closed.value.reason.code == 4001
        assert not gw.gateway.caps.active


async def test_a_tier_change_ends_only_the_streams_the_new_tier_lacks() -> None:
    async with open_gateway() as gw:
        key = gw.create_key("business", name="mover")
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=httpx.Timeout(10, read=30)) as c:
            with trio.fail_after(10):
                async with c.stream("GET", "/v1/sports/basketball_nba/live/sse",
                                    params={"apiKey": key, "heartbeat_s": 1}) as pbp, \
                        c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key, "heartbeat_s": 1}) as drops:
                    pbp_events, drop_events = sse_events(pbp), sse_events(drops)
                    await next_of(pbp_events, "connected")
                    await next_of(drop_events, "connected")
                    _move(gw, "mover", "starter")  # play-by-play yes, odds streams no
                    final = await next_of(drop_events, "error")
                    assert final.data["error"] == "tier_required"
                    for _ in range(3):  # the play-by-play stream goes on (heartbeats)
                        assert (await next_of(pbp_events, "heartbeat")).data["type"] == "heartbeat"
                    assert sum(gw.gateway.caps.active.values()) == 1


async def test_a_revoked_keys_webhooks_stop(nursery: trio.Nursery, tmp_path: Any) -> None:
    from .conftest import make_config, start_gateway
    from .helpers import push, quote
    from .test_webhooks_delivery import Receiver, create_hook

    receiver = Receiver()
    receiver.url = (await nursery.start(receiver.serve))[0] + "/hook"
    gw = await start_gateway(nursery, make_config(tmp_path))
    key, feeder = gw.key("business", name="hooked"), gw.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gw.client() as c:
            await create_hook(c, key, receiver.url)
            await push(c, feeder, [quote(-110)])
            await push(c, feeder, [quote(-130)])
            await receiver.wait_for(1)
            store = gateway_store(gw)
            store.write_fn_own_connection(lambda conn: revoke_key(conn, "hooked"))
            store.close()
            await trio.sleep(2.0)
            before = len(receiver.requests)
            await push(c, feeder, [quote(-110)])
            await push(c, feeder, [quote(-150)])
            await trio.sleep(2.0)
    assert len(receiver.requests) == before == 1
    gw.stop.set()


def gateway_store(running: Any) -> Any:
    from gateway.store import Store

    return Store(running.config.db_path(), readers=1)

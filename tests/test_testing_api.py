"""gateway.testing and the pytest plugin, used the way a bot author would."""

from __future__ import annotations

import json
import os
import threading

import httpx
import trio

from gateway.testing import SyncGatewayHandle, open_gateway, run_gateway


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_sync_fixture_with_requests_and_sseclient(gateway_server: SyncGatewayHandle) -> None:
    """The example from the README: connect a real SSE client, push a move, see the drop."""
    import requests
    from sseclient import SSEClient

    gateway_server.move("evt1", "pinnacle", "h2h", "home", -110, -110)  # baseline before connecting
    resp = requests.get(f"{gateway_server.base_url}/v1/odds-drop/basketball_nba",
                        params={"apiKey": gateway_server.key, "threshold": 10}, stream=True, timeout=10)
    events = SSEClient(resp).events()
    assert json.loads(next(events).data)["type"] == "connected"
    gateway_server.move("evt1", "pinnacle", "h2h", "home", -110, -125)
    drop = json.loads(next(e for e in events if e.data and '"odds_drop"' in e.data).data)
    resp.close()
    assert (drop["prev"], drop["new"], drop["direction"]) == (-110, -125, "toward_favorite")


async def test_trio_helper_with_manual_clock() -> None:
    with trio.fail_after(10):
        async with open_gateway(manual_clock=True) as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
            start = gw.advance(0)
            await gw.move("evt2", "bet365", "totals", "over", -110, -130, point=220.5)
            gw.advance(5_000)
            await gw.move("evt2", "bet365", "totals", "over", -130, -150, point=220.5)
            r = await c.get("/v1/odds-drop/basketball_nba/recent", params={"apiKey": gw.key, "threshold": 1})
            drops = r.json()
    assert [d["new"] for d in drops] == [-150, -130]
    assert drops[1]["timestamp"] == start and drops[0]["timestamp"] == start + 5_000


async def test_replay_of_the_shipped_recording() -> None:
    with trio.fail_after(30):
        async with open_gateway() as gw, httpx.AsyncClient(base_url=gw.base_url) as c:
            batches = await gw.replay()
            sports = (await c.get("/v1/sports", params={"apiKey": gw.key})).json()
    assert batches > 10 and len(sports) >= 2


def test_no_leaked_threads_sockets_or_files() -> None:
    with run_gateway():
        pass  # warm imports and trio's thread cache
    fds, threads = _open_fds(), {t.name for t in threading.enumerate() if not t.daemon}
    for _ in range(3):
        with run_gateway() as gw:
            httpx.get(f"{gw.base_url}/healthz", timeout=5)
    assert _open_fds() == fds
    assert {t.name for t in threading.enumerate() if not t.daemon} == threads

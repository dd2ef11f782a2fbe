"""The seed docs' own client code, run unmodified (but for the host) against the gateway."""

from __future__ import annotations

import contextlib
import io
import json
import threading

import httpx
import trio

from .conftest import Running
from .helpers import push, quote


def seed_drop_example(base: str, key: str, stop_after: int, ready: threading.Event) -> str:
    """The seed page's "SSE example: Python (drop alerts)", printing into a buffer."""
    import requests
    from sseclient import SSEClient

    out = io.StringIO()
    url = f"{base}/v1/odds-drop/basketball_nba"
    params = {"apiKey": key, "threshold": 10, "bookmakers": "pinnacle"}

    resp = requests.get(url, params=params, stream=True, timeout=10)
    ready.set()
    with contextlib.redirect_stdout(out):
        printed = 0
        for ev in SSEClient(resp).events():
            if not ev.data:
                continue
            drop = json.loads(ev.data)
            if drop.get("type") != "odds_drop":
                continue
            print(f"{drop['bookmaker']} {drop['side']}: {drop['prev']} -> {drop['new']} "
                  f"({drop['direction']})")
            printed += 1
            if printed == stop_after:
                break
    resp.close()
    return out.getvalue()


async def test_requests_sseclient_drop_example(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    ready = threading.Event()
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110)])
            async with trio.open_nursery() as n:
                result: list[str] = []

                async def run_client() -> None:
                    result.append(await trio.to_thread.run_sync(seed_drop_example, gateway.url, key, 1, ready))

                n.start_soon(run_client)
                await trio.to_thread.run_sync(ready.wait)
                await trio.sleep(0.2)  # the stream is open once headers arrived; let it subscribe
                await push(c, ingest, [quote(-120)])
    assert result == ["pinnacle h2h_home: -110 -> -120 (toward_favorite)\n"]


def seed_httpx_pbp_example(base: str, key: str, ready: threading.Event) -> dict[str, object]:
    """The seed page's "SSE example: Python" (httpx, PBP stream); returns the first pbp_event."""
    with httpx.stream("GET", f"{base}/v1/sports/basketball_nba/live/sse",
                      params={"apiKey": key}, timeout=None) as r:
        ready.set()
        for line in r.iter_lines():
            if line.startswith("data: "):
                evt = json.loads(line[6:])
                if evt["type"] == "pbp_event":
                    return dict(evt)
    raise AssertionError("stream ended")


async def test_httpx_pbp_example(gateway: Running) -> None:
    key, ingest = gateway.key("starter"), gateway.key(scopes=("ingest",))
    play = {"match_id": "0042500222", "sport_key": "basketball_nba", "source": "nba_live", "event_type": "made_3",
            "team_or_player_a": "Lakers", "team_or_player_b": "Thunder", "score_a": "107", "score_b": "125",
            "description": "C. Holmgren 3PT JUMPER from 26ft", "state": {"period": 4, "clock": "PT2:14"},
            "occurred_at_ms": 1778214012700}
    ready = threading.Event()
    with trio.fail_after(15):
        async with gateway.client() as c, trio.open_nursery() as n:
            got: list[dict[str, object]] = []

            async def run_client() -> None:
                got.append(await trio.to_thread.run_sync(seed_httpx_pbp_example, gateway.url, key, ready))

            n.start_soon(run_client)
            await trio.to_thread.run_sync(ready.wait)
            await trio.sleep(0.2)
            await push(c, ingest, [play], path="/v1/ingest/pbp")
    evt = got[0]
    assert evt["event_type"] == "made_3" and evt["score_b"] == "125" and evt["role"] == "primary"
    assert isinstance(evt["id"], int) and evt["state"] == {"period": 4, "clock": "PT2:14", "status": "in_progress"}

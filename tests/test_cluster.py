"""The cluster for real (README "Cluster"): a redis-server of the test's own, one writer and two
edges as `gateway serve` processes, clients on both edges.

- clients cut at random moments resume on the other edge and get every frame exactly once,
  in order (bench/cluster_churn.py does 1,000 cuts);
- an edge serves REST from its board as the writer does, answers ingest and webhooks with
  421 `wrong_role` and the writer's URL; keys created and revoked on the writer's database
  work and stop on the edges within 2 s;
- a starter key's cap of 3 holds across both edges; `kill -9` of an edge frees its slots
  within lease_s;
- Redis killed and restarted (AOF) mid-stream, and the writer killed and restarted: no
  frame lost or doubled, clients on the edges keep their connections;
- nginx in front of two edges: SSE and WebSocket through it, resume across a stopped edge
  (tests/test_cluster_proxy.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.cluster_procs import Cluster, Load, _status, cluster, needs_redis, poll, sse_ids

pytestmark = needs_redis
SPORT = "basketball_nba"
DROPS = f"/v1/odds-drop/{SPORT}?threshold=1&heartbeat_s=1"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests that leave it as they found it."""
    with cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


async def _now(value: object) -> bool:
    return bool(value)


async def _metric_is(client: httpx.AsyncClient, url: str, name: str, value: float) -> bool:
    return f"\n{name} {float(value)}\n" in (await client.get(url + "/metrics")).text


async def _follow(c: Cluster, key: str, start: int, got: list[int], *, until: trio.Event,
                  target: list[int], edge: int = 0, cut_mean_s: float | None = None, seed: int = 0,
                  reconnects: list[int] | None = None) -> None:
    """A client of the drop stream: from edge `edge`, cut after a random time (exponential,
    mean `cut_mean_s`) and resumed with Last-Event-ID on the other edge, until it has read
    `target[0]` (set once the load is over)."""
    rng = random.Random(seed)
    last = start
    while True:
        port = c.edges[edge].port
        edge = (edge + 1) % len(c.edges)
        cut = cut_mean_s is not None and not until.is_set()
        with trio.move_on_after(rng.expovariate(1 / cut_mean_s) if cut and cut_mean_s else 3600):
            try:
                async for ev_id in sse_ids(port, DROPS, key, last):
                    if ev_id is not None:
                        got.append(ev_id)
                        last = ev_id
                    if target and last >= target[0]:
                        return
            except OSError:  # an edge that is going away
                await trio.sleep(0.05)
        if target and got and got[-1] >= target[0]:
            return
        if reconnects is not None:
            reconnects.append(1)


async def test_resume_across_edges_is_exactly_once(shared: Cluster) -> None:
    c = shared
    key, ingest = c.key("churn-reader"), c.key("churn-loader", scopes=("ingest",))
    await c.known(key)
    load = Load(c.writer.url, ingest)
    await load.baselines()
    start = c.last_seq()
    clients = 12
    got: list[list[int]] = [[] for _ in range(clients)]
    cuts: list[int] = []
    done = trio.Event()
    target: list[int] = []
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(lambda i=i: _follow(c, key, start, got[i], until=done, target=target,
                                                       edge=i % 2, cut_mean_s=0.15, seed=i, reconnects=cuts))
            await trio.sleep(0.3)
            await load.run(changes=1100, rate=300)
            done.set()
            target.append(c.drop_ids(SPORT, start)[-1])
    expected = c.drop_ids(SPORT, start)
    assert len(expected) > 1000
    for ids in got:
        assert ids == expected, (len(ids), len(expected))
    assert len(cuts) >= 200, len(cuts)  # every cut moved the client to the other edge


async def test_rest_on_an_edge_is_the_writer_s(shared: Cluster) -> None:
    c = shared
    key, ingest = c.key("rest-reader"), c.key("rest-loader", scopes=("ingest",))
    await c.known(key)
    load = Load(c.writer.url, ingest, sports=("baseball_mlb",), seed=3)
    await load.baselines()
    await load.run(changes=40, rate=400)
    last = c.last_seq()
    paths = ["/v1/sports", "/v4/sports/baseball_mlb/odds?oddsFormat=american&markets=h2h",
             "/v1/sports/baseball_mlb/events", "/v1/odds-drop/baseball_mlb/recent?threshold=1&limit=20",
             "/v1/odds-drop/all/recent?threshold=5", "/v1/sports/baseball_mlb/live/points"]
    async with httpx.AsyncClient(timeout=10, headers={"X-API-Key": key}) as client:
        with trio.fail_after(10):
            for edge in c.edges:  # the edge has read up to the writer's last id
                await poll(lambda e=edge: _metric_is(client, e.url, "gateway_last_event_id", last))
        for path in paths:
            want = await client.get(c.writer.url + path)
            assert want.status_code == 200, want.text
            for edge in c.edges:
                r = await client.get(edge.url + path)
                assert r.status_code == 200, r.text
                assert r.json() == want.json(), path
        assert (await client.get(c.edges[0].url + "/readyz")).json()["status"] == "ready"


async def test_ingest_and_webhooks_on_an_edge_are_421_with_the_writer_s_url(shared: Cluster) -> None:
    c = shared
    key = c.key("wrong-role", scopes=("ingest",))
    await c.known(key)
    async with httpx.AsyncClient(timeout=10, headers={"X-API-Key": key}) as client:
        for method, path in [("POST", "/v1/ingest/odds"), ("POST", "/v1/ingest/pbp"), ("GET", "/v1/webhooks"),
                             ("POST", "/v1/webhooks"), ("DELETE", "/v1/webhooks/1")]:
            r = await client.request(method, c.edges[1].url + path, json=[])
            assert r.status_code == 421, (path, r.text)
            body = r.json()
            assert body["error"] == "wrong_role"
            assert body["writer_url"] == c.writer.url
            assert c.writer.url in body["message"]
        r = await client.get(c.writer.url + "/v1/webhooks")  # the writer serves them
        assert r.status_code == 200


async def test_websocket_on_an_edge_snapshot_live_and_resume_on_the_other(shared: Cluster) -> None:
    c = shared
    key, ingest = c.key("ws-reader"), c.key("ws-loader", scopes=("ingest",))
    await c.known(key)
    load = Load(c.writer.url, ingest, sports=("icehockey_nhl",), events=1, books=("pinnacle",), seed=5)
    await load.baselines()
    path = "/ws/odds/icehockey_nhl?apiKey=" + key
    with trio.fail_after(20):
        async with open_websocket_url(f"ws://127.0.0.1:{c.edges[0].port}{path}") as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            snap = json.loads(await ws.get_message())
            assert snap["type"] == "initial_state"
            assert {r["bookmaker"] for r in snap["data"]} == {"pinnacle"}  # the edge's board
            await load.run(changes=4, rate=100)
            ids = []
            while len(ids) < 2:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "odds_update":
                    ids.append(msg["id"])
        await load.run(changes=6, rate=100)  # while no client is connected
        expected = [i for i in _odds_ids(c, "icehockey_nhl") if i > ids[-1]]
        async with open_websocket_url(f"ws://127.0.0.1:{c.edges[1].port}{path}&last_event_id={ids[-1]}") as ws:
            got = []
            while len(got) < len(expected):
                msg = json.loads(await ws.get_message())
                if msg["type"] == "odds_update":
                    got.append(msg["id"])
            assert got == expected


def _odds_ids(c: Cluster, sport: str) -> list[int]:
    import sqlite3

    from gateway.store import log_ids

    with sqlite3.connect(c.db) as conn:
        return log_ids(conn, "odds", [sport])


async def test_keys_reach_and_leave_every_edge_within_2_s(shared: Cluster) -> None:
    c = shared
    key = c.key("fresh-key", tier="business")
    started = trio.current_time()
    async with httpx.AsyncClient(timeout=10) as client:
        await c.known(key)
        assert trio.current_time() - started < 2.0
        events: list[list[dict[str, Any]]] = [[], []]

        async def hold(i: int) -> None:
            async for _ in sse_ids(c.edges[i].port, DROPS, key, events=events[i]):
                pass

        async with trio.open_nursery() as nursery:
            for i in (0, 1):
                nursery.start_soon(hold, i)
            with trio.fail_after(5):
                await poll(lambda: _now(all(e and e[0]["type"] == "connected" for e in events)))
            c.revoke("fresh-key")
            revoked = trio.current_time()
            with trio.fail_after(2):  # both streams end with key_revoked, REST answers 401
                await poll(lambda: _now(all(any(f.get("error") == "key_revoked" for f in e) for e in events)))
                for edge in c.edges:
                    await poll(lambda e=edge: _status(client, e.url + "/v1/sports", key, 401))
            assert trio.current_time() - revoked < 2.0
            nursery.cancel_scope.cancel()


async def test_a_starter_key_s_cap_holds_across_edges_and_a_dead_edge_frees_its_slots(tmp_path: Path) -> None:
    lease_s = 2.0
    with cluster(tmp_path, lease_s=lease_s) as c:
        key = c.key("starter-cap", tier="starter")
        await c.known(key)
        pbp = f"/v1/sports/{SPORT}/live/sse?heartbeat_s=1"
        a, b = c.edges
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:

            async def open_on(url: str) -> httpx.Response:
                return await client.send(client.build_request("GET", url + pbp, headers={"X-API-Key": key}),
                                         stream=True)

            async def held_on(url: str) -> httpx.Response:
                """A stream that was admitted (waiting while a release reaches Redis)."""
                while True:
                    r = await open_on(url)
                    if r.status_code == 200:
                        return r
                    assert r.status_code == 429, r.status_code
                    await r.aclose()
                    await trio.sleep(0.05)

            with trio.fail_after(20):
                held = [await held_on(a.url), await held_on(a.url), await held_on(b.url)]  # 3 = the starter cap
                for url in (a.url, b.url, a.url, b.url):
                    r = await open_on(url)
                    assert r.status_code == 429, url
                    assert (await r.aread()).find(b"connection_cap") > 0
                    await r.aclose()
                await held.pop().aclose()  # B's stream ends: its slot is free on either edge
                held.append(await held_on(a.url))  # A holds all three now
                r = await open_on(b.url)
                assert r.status_code == 429
                await r.aclose()
                a.kill9()  # A's lease expires within lease_s: its three slots are free
                killed = trio.current_time()
                again = await held_on(b.url)
                freed_after = trio.current_time() - killed
                assert freed_after <= lease_s + 0.5, freed_after
                more = [again, await held_on(b.url), await held_on(b.url)]  # the key works again, to its cap
                r = await open_on(b.url)
                assert r.status_code == 429
                await r.aclose()
            for r in [*held, *more]:
                await r.aclose()


async def _through_an_outage(c: Cluster, outage: Any, *, changes: int = 600, rate: float = 200) -> list[int]:
    """Clients on both edges read the drop stream while the load runs and `outage()` happens in
    the middle; returns how often the clients had to reconnect (0: the edges kept them)."""
    key, ingest = c.key("outage-reader"), c.key("outage-loader", scopes=("ingest",))
    await c.known(key)
    load = Load(c.writer.url, ingest, seed=11)
    await load.baselines()
    start = c.last_seq()
    got: list[list[int]] = [[] for _ in range(4)]
    reconnects: list[int] = []
    done, target = trio.Event(), []
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(lambda i=i: _follow(c, key, start, got[i], until=done, target=target,
                                                       edge=i % 2, reconnects=reconnects))
            await trio.sleep(0.3)
            async with trio.open_nursery() as loading:
                loading.start_soon(lambda: load.run(changes=changes // 3, rate=rate))
                await trio.sleep(changes / 3 / rate / 2)
                await outage(load)
            await load.run(changes=changes - changes // 3, rate=rate)
            done.set()
            target.append(c.drop_ids(SPORT, start)[-1])
    expected = c.drop_ids(SPORT, start)
    for ids in got:
        assert ids == expected, (len(ids), len(expected), c.logs())
    return reconnects


async def test_redis_killed_and_restarted_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        async def outage(load: Load) -> None:
            c.redis.kill9()  # AOF fsyncs every second: the last writes may be lost; the writer re-sends them
            await trio.sleep(1.0)  # the writer goes on committing meanwhile
            c.redis.start()

        reconnects = await _through_an_outage(c, outage)
        assert reconnects == []  # the clients saw a delay, not a disconnect
        assert "caught up from the store" in c.writer.log_text() or "Redis answers again" in c.writer.log_text()
        for edge in c.edges:
            assert "Redis answers again" in edge.log_text()


async def test_the_writer_killed_and_restarted_edges_keep_their_clients(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        async def outage(load: Load) -> None:
            port = c.writer.port
            c.writer.kill9()  # its lock in Redis names a dead pid: the new writer takes over at once
            await trio.sleep(0.5)
            c.start_writer(port=port)
            load.url = c.writer.url

        reconnects = await _through_an_outage(c, outage)
        assert reconnects == []

"""The writer's mirror and an edge in this process, against a redis-server of the test's own:
Redis stays a copy of the store's log whatever it loses, and an edge that cannot fill a gap
says so to its clients (they reconnect and get `reset`) instead of skipping it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import trio

from gateway.cluster import link
from gateway.cluster.records import pack_entry, seq_of
from tests.cluster_procs import HOST, RedisServer, needs_redis, sse_ids
from tests.conftest import Running, make_config, start_gateway
from tests.helpers import push, quote

pytestmark = needs_redis
SPORT = "basketball_nba"


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", aof=False)
    server.start()
    yield server
    server.stop()


async def _started(nursery: trio.Nursery, tmp: Path, url: str, role: str) -> Running:
    await trio.Path(tmp).mkdir(exist_ok=True)
    return await start_gateway(nursery, make_config(tmp, cluster={"redis_url": url, "role": role, "lease_s": 2}))


def _store_log(db: str) -> list[tuple[int, bytes]]:
    with sqlite3.connect(db) as conn:
        return [(seq, pack_entry(topic, ms, body)) for seq, topic, ms, body in
                conn.execute("SELECT seq, topic, ms, body FROM stream_log ORDER BY seq")]


def _redis_log(r: Any) -> list[tuple[int, bytes]]:
    return [(seq_of(i), f[b"f"]) for i, f in r.xrange(link.LOG)]


async def _drops(c: Any, key: str, n: int, start: int, event: str = "e1") -> None:
    for i in range(n):
        await push(c, key, [quote(-110 - 5 * ((start + i) % 40), event=event)])


async def test_redis_is_the_store_s_log_after_it_lost_its_tail(nursery: trio.Nursery, tmp_path: Path,
                                                                redis_server: RedisServer) -> None:
    writer = await _started(nursery, tmp_path / "w", redis_server.url, "writer")
    key = writer.key("enterprise", scopes=("ingest",))
    r = redis.Redis(host=HOST, port=redis_server.port)
    with trio.fail_after(20):
        async with writer.client() as c:
            await _drops(c, key, 30, 0)
            while _redis_log(r) != _store_log(writer.config.db_path()):  # noqa: ASYNC110
                await trio.sleep(0.05)
            # what a Redis restarted from an AOF a second old looks like: the last entries and
            # their head are gone (and the stream's last id with them)
            entries = r.xrange(link.LOG)
            lost = [i for i, _ in entries[-10:]]
            r.xdel(link.LOG, *lost)
            r.execute_command("XSETID", link.LOG, entries[-11][0])
            r.hset(link.META, "head", seq_of(entries[-11][0]))
            await _drops(c, key, 10, 30)  # the next publish finds Redis behind: the writer catches up
            while _redis_log(r) != _store_log(writer.config.db_path()):  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert len(_redis_log(r)) > 40  # every row, once, in order, with the bytes the store wrote
    assert int(r.hget(link.META, "head") or 0) == _store_log(writer.config.db_path())[-1][0]
    writer.stop.set()


async def test_an_emptied_redis_makes_a_new_epoch_and_an_edge_resets_its_clients(
        nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer) -> None:
    writer = await _started(nursery, tmp_path / "w", redis_server.url, "writer")
    ingest, reader = writer.key("enterprise", scopes=("ingest",)), writer.key("business", name="reader")
    r = redis.Redis(host=HOST, port=redis_server.port)
    with trio.fail_after(30):
        while not r.hget(link.KEYS, _hash(reader)):  # noqa: ASYNC110 - the key mirror's next pass
            await trio.sleep(0.05)
        edge = await _started(nursery, tmp_path / "e", redis_server.url, "edge")
        port = int(edge.url.rsplit(":", 1)[1])
        async with writer.client() as c:
            await _drops(c, ingest, 5, 0)
            seen: list[int | None] = []
            frames: list[dict[str, Any]] = []

            async def read() -> None:
                async for i in sse_ids(port, f"/v1/odds-drop/{SPORT}?threshold=1", reader, events=frames):
                    seen.append(i)

            async with trio.open_nursery() as clients:
                clients.start_soon(read)
                while not frames:  # noqa: ASYNC110 - connected
                    await trio.sleep(0.02)
                epoch = r.hget(link.META, "epoch")
                r.flushall()  # Redis lost everything (no AOF)
                await _drops(c, ingest, 3, 5)  # the writer finds it empty: a new epoch, from its last id
                while r.hget(link.META, "epoch") in (None, epoch):  # noqa: ASYNC110
                    await trio.sleep(0.05)
                while len(frames) < 2:  # noqa: ASYNC110 - the edge cut its clients
                    await trio.sleep(0.05)
            assert frames[-1]["type"] == "stream_status" and frames[-1]["reason"] == "cluster_reset"
            last = max(i for i in seen if i is not None) if any(seen) else 0
            resumed: list[dict[str, Any]] = []
            with trio.move_on_after(1.5):
                async for _ in sse_ids(port, f"/v1/odds-drop/{SPORT}?threshold=1", reader, last, events=resumed):
                    pass
            assert [f["type"] for f in resumed[:2]] == ["connected", "stream_status"]
            assert resumed[1]["status"] == "reset" and resumed[1]["reason"] == "resume_window_exceeded"
    edge.stop.set()
    writer.stop.set()


def _hash(key: str) -> str:
    from gateway.auth import hash_key

    return hash_key(key)


async def test_the_resume_window_in_redis_follows_the_store_s(nursery: trio.Nursery, tmp_path: Path,
                                                              redis_server: RedisServer) -> None:
    from gateway.store import Store, delete_log_through, prune_names

    writer = await _started(nursery, tmp_path / "w", redis_server.url, "writer")
    key = writer.key("enterprise", scopes=("ingest",))
    r = redis.Redis(host=HOST, port=redis_server.port)
    with trio.fail_after(20):
        async with writer.client() as c:
            await _drops(c, key, 20, 0, event="old")
            await _drops(c, key, 5, 0, event="new")
            while _redis_log(r) != _store_log(writer.config.db_path()):  # noqa: ASYNC110
                await trio.sleep(0.05)
        through = _store_log(writer.config.db_path())[30][0]
        store = Store(writer.config.db_path(), readers=1)
        try:  # what the retention task does (gateway/retention.py), here at once
            store.write_fn_own_connection(lambda conn: (delete_log_through(conn, through), prune_names(conn)))
        finally:
            store.close()
        while int(r.hget(link.META, "floor") or 0) != through:  # noqa: ASYNC110 - the mirror's next pass
            await trio.sleep(0.1)
    assert _redis_log(r) == _store_log(writer.config.db_path())  # XTRIM MINID: the same rows
    assert _redis_log(r)[0][0] == through + 1
    writer.stop.set()

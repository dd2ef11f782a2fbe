"""Real processes for the cluster tests: a redis-server of the test's own (ephemeral port, AOF
in tmp_path), one `gateway serve --role writer` and `--role edge` processes, all started
the way README "Cluster" says, on port 0 (the bound URL read from each banner).

redis-server: Debian's `redis-server` package (.ci/cluster-deps installs it in CI). Where it
is missing the tests skip saying so, except under CI (GATEWAY_CI=1), where they fail.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.auth import revoke_key
from gateway.store import Store, log_ids, max_seq
from tests.processes import _banner_url, create_key_in, write_config

REDIS_SERVER = shutil.which("redis-server") or next(
    (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)
IN_CI = bool(os.environ.get("GATEWAY_CI"))
needs_redis = pytest.mark.skipif(REDIS_SERVER is None and not IN_CI,
                                 reason="redis-server is not installed (apt-get install redis-server; "
                                        ".ci/cluster-deps does it in CI)")
HOST = "127.0.0.1"


async def poll(check: Callable[[], Awaitable[bool]], every_s: float = 0.05) -> None:
    """Until `check()` (a client polling a process's state; the caller bounds the time)."""
    while not await check():  # noqa: ASYNC110 - polling another process
        await trio.sleep(every_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """redis-server with AOF (appendfsync everysec, Redis's default) in its own directory."""

    def __init__(self, directory: Path, *, aof: bool = True) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed: apt-get install redis-server"
        self.dir, self.aof = directory, aof
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        cmd = [str(REDIS_SERVER), "--port", str(self.port), "--bind", HOST, "--dir", str(self.dir),
               "--appendonly", "yes" if self.aof else "no", "--save", "", "--daemonize", "no",
               "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def command(self, *args: str) -> bytes:
        """One command in RESP, its raw reply (enough for the tests' few reads)."""
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            parts = [f"*{len(args)}\r\n".encode()] + [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
            s.sendall(b"".join(parts))
            time.sleep(0.05)
            return s.recv(1 << 20)


@dataclass
class Node:
    role: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    args: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_node(tmp: Path, config: Path, role: str, *, name: str, db: Path | None = None, port: int = 0) -> Node:
    log = tmp / f"{name}.log"
    args = ["serve", "--config", str(config), "--port", str(port), "--role", role, "--no-feeds"]
    if db is not None:
        args += ["--db", str(db)]
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=subprocess.PIPE, stderr=out,
                                stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        url = _banner_url(proc, log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Node(role, proc, url, log, args)


@dataclass
class Cluster:
    tmp: Path
    redis: RedisServer
    config: Path
    db: Path
    writer: Node
    edges: list[Node]

    def start_writer(self, port: int = 0) -> Node:
        self.writer = start_node(self.tmp, self.config, "writer", name="writer", db=self.db, port=port)
        return self.writer

    def start_edge(self, i: int) -> Node:
        node = start_node(self.tmp, self.config, "edge", name=f"edge{i}")
        self.edges[i] = node
        return node

    def key(self, name: str, tier: str = "enterprise", scopes: tuple[str, ...] = ()) -> str:
        return create_key_in(self.config, self.db, name, tier, scopes)

    async def known(self, key: str, timeout_s: float = 2.0) -> None:
        """Wait until every edge knows `key` (the writer mirrors keys twice a second)."""
        async with httpx.AsyncClient(timeout=5) as client:
            with trio.fail_after(timeout_s):
                for edge in self.edges:
                    await poll(lambda e=edge: _status(client, e.url + "/v1/sports", key, 200))

    def revoke(self, name: str) -> None:
        store = Store(str(self.db), readers=1)
        try:
            store.write_fn_sync(lambda c: revoke_key(c, name))
        finally:
            store.close()

    def last_seq(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return max_seq(conn)

    def drop_ids(self, sport: str, after: int = 0) -> list[int]:
        with sqlite3.connect(self.db) as conn:
            return [i for i in log_ids(conn, "drop", [sport]) if i > after]

    def logs(self) -> str:
        return "\n".join(f"--- {n.log.name}\n{n.log_text()[-3000:]}" for n in [self.writer, *self.edges])


async def _status(client: httpx.AsyncClient, url: str, key: str, status: int) -> bool:
    return (await client.get(url, headers={"X-API-Key": key})).status_code == status


@contextmanager
def cluster(tmp: Path, *, edges: int = 2, lease_s: float = 3.0, aof: bool = True,
            **sections: dict[str, Any]) -> Iterator[Cluster]:
    redis = RedisServer(tmp / "redis", aof=aof)
    redis.start()
    config = write_config(tmp, cluster={"redis_url": redis.url, "lease_s": lease_s}, **sections)
    c = Cluster(tmp, redis, config, tmp / "writer.db", None, [])  # type: ignore[arg-type]
    try:
        c.start_writer()
        c.edges = [None] * edges  # type: ignore[list-item]
        for i in range(edges):
            c.start_edge(i)
        yield c
    finally:
        for node in [*c.edges, c.writer]:
            if node is not None:
                node.stop()
        redis.stop()


# -- clients and load ---------------------------------------------------------------------------------

async def sse_ids(port: int, path: str, key: str, last: int | None = None,
                  events: list[dict[str, Any]] | None = None) -> AsyncIterator[int | None]:
    """The ids of an SSE stream, read from a raw socket (no client library in the way); None
    for a frame without an id, which also goes to `events` when given (a reset, a final frame)."""
    import json

    stream = await trio.open_tcp_stream(HOST, port)
    try:
        head = (f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
                + (f"Last-Event-ID: {last}\r\n" if last is not None else "") + "\r\n")
        await stream.send_all(head.encode())
        buf, body = b"", False
        async for chunk in stream:
            buf += chunk
            if not body:
                if b"\r\n\r\n" not in buf:
                    continue
                status, buf = buf.split(b"\r\n\r\n", 1)
                if b" 200" not in status.split(b"\r\n", 1)[0]:
                    raise AssertionError(f"{path}: {status.decode(errors='replace')} {buf[:300]!r}")
                body = True
            *frames, buf = buf.split(b"\n\n")
            for ev in frames:
                lines = ev.split(b"\n")
                ids = [int(x[4:]) for x in lines if x.startswith(b"id: ")]
                if ids:
                    yield ids[0]
                    continue
                for line in lines:
                    if line.startswith(b"data: "):
                        if events is not None:
                            events.append(json.loads(line[6:]))
                        yield None  # a frame without an id (connected, heartbeat, reset, a final frame)
    finally:
        await stream.aclose()


def price(cents: int) -> int:
    return cents - 100 if cents < 0 else cents + 100


@dataclass
class Load:
    """Flat quotes to the writer; every change moves 1-15 cents (threshold 1: each is a drop)."""

    url: str
    key: str
    sports: tuple[str, ...] = ("basketball_nba",)
    events: int = 3
    books: tuple[str, ...] = ("pinnacle", "bet365", "betmgm", "caesars")
    seed: int = 7
    cents: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.rng = rng
        for s in self.sports:
            for e in range(self.events):
                for b in self.books:
                    for o in ("home", "away"):
                        self.cents[(s, f"ev-{s}-{e}", b, o)] = rng.randint(-60, 60)

    def row(self, k: tuple[str, str, str, str]) -> dict[str, Any]:
        s, e, b, o = k
        return {"sport_key": s, "event_id": e, "home_team": f"{e} H", "away_team": f"{e} A",
                "commence_time": "2026-12-01T20:00:00Z", "bookmaker": b, "market_key": "h2h", "outcome": o,
                "price": price(self.cents[k])}

    async def post(self, client: httpx.AsyncClient, rows: list[dict[str, Any]]) -> None:
        """Retried while the writer is away (a restart): prices are absolute, a repeat changes nothing."""
        with trio.fail_after(20):
            while True:
                try:
                    r = await client.post(self.url + "/v1/ingest/odds", json=rows, headers={"X-API-Key": self.key})
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                    await trio.sleep(0.05)
                    continue
                if r.status_code != 503:
                    break
                await trio.sleep(0.05)
        assert r.status_code == 200, r.text

    async def baselines(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await self.post(client, [self.row(k) for k in self.cents])

    async def run(self, changes: int, rate: float, *, every_s: float = 0.05,
                  pause: trio.Event | None = None) -> int:
        """`changes` price changes at `rate` per second; returns how many were sent."""
        per = max(1, int(rate * every_s))
        sent = 0
        keys = list(self.cents)
        async with httpx.AsyncClient(timeout=30) as client:
            while sent < changes:
                rows = []
                for k in self.rng.sample(keys, min(per, changes - sent, len(keys))):
                    step = self.rng.choice((-1, 1)) * self.rng.randint(1, 15)
                    self.cents[k] = max(-400, min(400, self.cents[k] + step)) or step
                    rows.append(self.row(k))
                await self.post(client, rows)
                sent += len(rows)
                await trio.sleep(every_s)
        return sent

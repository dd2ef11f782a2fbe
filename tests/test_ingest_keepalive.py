"""Keep-alive ingest connections leave Hypercorn after a 200 (issue 19, ingest_keepalive.py):
the same answers, anything else handed back to Hypercorn unread, the same bounds (413, 408,
idle, shutdown), no descriptor or task left behind, and a head parser that never takes what
h11 would read differently."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import pytest
import requests
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.testing import GatewayHandle, gateway_config, open_gateway
from gateway.web.ingest_keepalive import parse_head

from .helpers import quote


class Conn:
    """One HTTP/1.1 connection on a bare trio stream: it sends exactly the bytes a test writes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.buffer = stream, b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next whole response (status, headers lower-cased, body); status 0 at EOF."""
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return 0, {}, b""
            self.buffer += data
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            data = await self.stream.receive_some(65536)
            assert data, "the connection ended inside a body"
            self.buffer += data
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split(" ")[1]), headers, body

    async def eof(self) -> bool:
        """True when the server closed the connection (after what is buffered)."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:
            return True


def post(body: bytes | list[Any], key: str, *, path: str = "/v1/ingest/odds", extra: str = "") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data


@asynccontextmanager
async def connect(gw: GatewayHandle) -> AsyncIterator[Conn]:
    url = urlsplit(gw.base_url)
    stream = await trio.open_tcp_stream(url.hostname or "", url.port or 0)
    async with stream:
        yield Conn(stream)


async def kept(gw: GatewayHandle, conn: Conn, price: int = -110) -> None:
    """Send a first ingest POST; wait until the connection has left Hypercorn."""
    before = gw.gateway.ingest_kept_total
    await conn.send(post([quote(price)], gw.key))
    status, _, body = await conn.response()
    assert status == 200, body
    with trio.fail_after(2):
        while gw.gateway.ingest_kept_total == before:  # noqa: ASYNC110 - it leaves right after the answer
            await trio.sleep(0.005)


async def gone(gw: GatewayHandle) -> None:
    """Every kept connection ended, its task and descriptor with it."""
    with trio.fail_after(5):
        while gw.gateway.detached_open or gw.gateway.ingest_kept:  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.fixture
async def gw(tmp_path: Any) -> AsyncIterator[GatewayHandle]:
    config = gateway_config(tmp_path, server={"body_timeout_s": 1.0})
    async with open_gateway(config) as handle:
        yield handle


async def test_kept_connection_answers_as_hypercorn_did(gw: GatewayHandle) -> None:
    with trio.fail_after(10):
        async with connect(gw) as conn:
            await conn.send(post([quote(-110)], gw.key, extra="Origin: http://x.example\r\nX-Request-ID: first\r\n"))
            first = await conn.response()
            with trio.fail_after(2):
                while gw.gateway.ingest_kept != 1:  # noqa: ASYNC110 - it leaves Hypercorn right after
                    await trio.sleep(0.005)
            await conn.send(post([quote(-105)], gw.key, extra="Origin: http://x.example\r\nX-Request-ID: second\r\n"))
            second = await conn.response()
            assert (first[0], second[0]) == (200, 200)
            assert json.loads(second[2]).keys() == json.loads(first[2]).keys()
            assert second[1]["x-request-id"] == "second" and "server" not in second[1]  # not Hypercorn's
            same = {"content-type", "x-ratelimit-limit", "access-control-allow-origin", "vary"}
            assert {k: v for k, v in second[1].items() if k in same} == {k: v for k, v in first[1].items() if k in same}
            # a bad row, a bad key, a bad body: the same errors as through Hypercorn
            await conn.send(post([quote(-105) | {"price": "x"}], gw.key))
            status, _, body = await conn.response()
            assert (status, json.loads(body)["error"]) == (422, "invalid_rows"), body
            await conn.send(post([quote(-100)], "gw_not_a_key"))  # its body is dropped, the connection goes on
            status, headers, body = await conn.response()
            assert (status, json.loads(body)["error"]) == (401, "invalid_key") and "connection" not in headers
            await conn.send(post(b"[{", gw.key))
            status, _, body = await conn.response()
            assert status == 400, body
            await conn.send(post([quote(-100)], gw.key))
            status, _, body = await conn.response()
            assert status == 200 and json.loads(body)["accepted"] == 1, body
    await gone(gw)


async def test_every_acknowledged_quote_is_stored_and_streamed(gw: GatewayHandle) -> None:
    """200 one-quote POSTs on 4 kept connections: each 200 is a stored row and a drop frame."""
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as sse, \
                sse.stream("GET", f"/v1/odds-drop/basketball_nba?apiKey={gw.key}&threshold=1") as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            acked = 0

            async def feeder(i: int) -> None:
                nonlocal acked
                async with connect(gw) as conn:
                    for n in range(50):
                        await conn.send(post([quote(-110 - n, book=f"book{i}")], gw.key))
                        status, _, body = await conn.response()
                        assert status == 200, body
                        acked += json.loads(body)["accepted"]

            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(feeder, i)
            assert acked == 200
            drops = 0
            async for line in lines:
                drops += line.startswith("data:") and '"type":"odds_drop"' in line.replace(" ", "")
                if drops == 4 * 49:  # every move after each book's first price is a drop (a price shortening)
                    break
    stored, history = await trio.to_thread.run_sync(_stored_prices, gw)
    assert stored == {f"book{i}": -110 - 49 for i in range(4)}
    assert history == 200  # every change, even two of one millisecond


async def test_real_clients_reuse_a_kept_connection(gw: GatewayHandle) -> None:
    """requests.Session and httpx send one-quote POSTs on one connection, kept after the first."""
    def with_requests() -> list[int]:
        with requests.Session() as session:
            return [session.post(f"{gw.base_url}/v1/ingest/odds", json=[quote(-120 - n, book="bet365")],
                                 headers={"X-API-Key": gw.key}, timeout=5).status_code for n in range(30)]

    with trio.fail_after(20):
        assert await trio.to_thread.run_sync(with_requests) == [200] * 30
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=5) as c:
            for n in range(30):
                r = await c.post("/v1/ingest/odds", json=[quote(-120 - n, book="bovada")],
                                 headers={"X-API-Key": gw.key})
                assert r.status_code == 200 and r.json()["accepted"] == 1
    assert gw.gateway.ingest_kept_total >= 2
    await gone(gw)


async def test_ingest_has_its_own_rate_limit(gw: GatewayHandle) -> None:
    """A pro key (ingest_requests_per_s = 50) sends 80 POSTs at once on one kept connection:
    50 stored, 30 refused with 429 naming the setting and Retry-After, the connection open
    throughout; REST's requests_per_minute (600) is not touched by it."""
    key = gw.create_key("pro", name="pro-feeder", scopes=("ingest",))
    statuses: list[int] = []
    with trio.fail_after(10):
        async with connect(gw) as conn:
            for n in range(80):
                await conn.send(post([quote(-120 - n, book="betmgm")], key))
                status, headers, body = await conn.response()
                statuses.append(status)
                if status == 429:
                    error = json.loads(body)
                    assert (error["error"], error["rate_limit"], error["limit"]) == ("rate_limit",
                                                                                    "ingest_requests_per_s", 50)
                    assert headers["retry-after"] == "1" and "connection" not in headers
            assert statuses.count(200) >= 50 and statuses.count(429) >= 25, statuses
            assert statuses[:50] == [200] * 50
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=5) as c:
            r = await c.get("/v4/sports", headers={"X-API-Key": key})
            assert r.status_code == 200 and int(r.headers["x-requests-remaining"]) > 0
    await gone(gw)


def _stored_prices(gw: GatewayHandle) -> tuple[dict[str, int], int]:
    """(each book's stored price, line-history changes)."""
    import sqlite3

    with sqlite3.connect(gw.gateway.config.db_path()) as db:
        history = db.execute("SELECT COUNT(*) FROM price_history").fetchone()[0]
        return {book: int(price) for book, price in db.execute("SELECT bookmaker, price FROM quotes")}, history


async def test_other_requests_go_back_to_hypercorn(gw: GatewayHandle) -> None:
    """A GET, a chunked body, HTTP/1.0, a head in two packets, pipelined requests: all served."""
    with trio.fail_after(10):
        async with connect(gw) as conn:
            await kept(gw, conn)
            await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, _ = await conn.response()
            assert status == 200 and headers.get("server") == "hypercorn-h11"
            await kept(gw, conn, -105)  # Hypercorn's 200 to an ingest POST: it leaves again
            chunk = json.dumps([quote(-100)]).encode()
            await conn.send(f"POST /v1/ingest/odds HTTP/1.1\r\nHost: t\r\nX-API-Key: {gw.key}\r\n"
                            f"Transfer-Encoding: chunked\r\n\r\n{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
            status, _, body = await conn.response()
            assert status == 200 and json.loads(body)["accepted"] == 1, body
            await trio.sleep(0.05)
            whole = post([quote(105)], gw.key)
            await conn.send(whole[:20])  # a head in two packets: Hypercorn reads it
            await trio.sleep(0.05)
            await conn.send(whole[20:])
            status, _, body = await conn.response()
            assert status == 200, body
            await trio.sleep(0.05)
            health = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            await conn.send(post([quote(110)], gw.key) + post([quote(115)], gw.key) + health)
            assert [(await conn.response())[0] for _ in range(3)] == [200, 200, 200]
    await gone(gw)


async def test_bounds_hold_on_a_kept_connection(gw: GatewayHandle) -> None:
    """413 and 408 close the connection; a client gone mid-body leaves nothing behind."""
    limit = gw.gateway.config.server.max_body_bytes
    with trio.fail_after(10):
        async with connect(gw) as conn:
            await kept(gw, conn)

            async def refused() -> None:  # the client sends it all as curl would, then reads
                with contextlib.suppress(trio.BrokenResourceError):
                    await conn.send(post(b"[" + b" " * limit + b"]", gw.key))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(refused)
                status, headers, body = await conn.response()
            assert (status, json.loads(body)["error"], headers["connection"]) == (413, "payload_too_large", "close")
            assert await conn.eof()
        async with connect(gw) as conn:
            await kept(gw, conn)
            await conn.send(post([quote(-105)], gw.key)[:-5])  # the body stalls (body_timeout_s = 1)
            status, headers, body = await conn.response()
            assert (status, headers["connection"]) == (408, "close"), body
            assert await conn.eof()
        for _ in range(20):
            async with connect(gw) as conn:
                await kept(gw, conn)
                await conn.send(post([quote(-105)], gw.key)[:-5])
                conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await gone(gw)


async def test_shutdown_closes_idle_kept_connections(tmp_path: Any) -> None:
    config = gateway_config(tmp_path)
    with trio.fail_after(10):
        async with open_gateway(config) as handle, connect(handle) as conn:
            await kept(handle, conn)
            handle.gateway.shutdown_started.set()
            assert await conn.eof()
            await gone(handle)


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_!#$%&'*+.^`|~0123456789", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=20)
_LINE = st.one_of(
    st.tuples(st.sampled_from(["Host", "host", "HOST"]), _VALUE),
    st.tuples(st.sampled_from(["Content-Length", "content-length"]),
              st.one_of(st.integers(0, 10**6).map(str), _VALUE, st.just(" 12 "), st.just("1,1"))),
    st.tuples(st.sampled_from(["Transfer-Encoding", "Connection", "Expect", "Upgrade", "X-API-Key"]), _VALUE),
    st.tuples(_TOKEN, _VALUE),
    st.tuples(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=8), _VALUE),
)


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(["POST", "GET", "post", "POST "]),
       target=st.sampled_from(["/v1/ingest/odds", "/v1/ingest/pbp", "/v1/ingest/odds?a=1", "/v1/ingest/x",
                               "/v1/ingest/odds#", "http://h/v1/ingest/odds", "/v1/ingest/odds\x7f"]),
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.1 ", "http/1.1"]),
       lines=st.lists(_LINE, max_size=6))
def test_head_parser_takes_only_what_h11_reads_the_same(method: str, target: str, version: str,
                                                        lines: list[tuple[str, str]]) -> None:
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in lines)
    raw = head.encode("latin-1")
    ours = parse_head(raw[:-2])
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw + b"\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        assert ours is None, head
        return
    if ours is None:
        return  # ours is stricter: Hypercorn reads it
    assert isinstance(event, h11.Request)
    assert event.method == b"POST" and event.target.decode() == ours.target
    theirs = dict(event.headers)
    assert int(theirs[b"content-length"]) == ours.content_length
    assert b"transfer-encoding" not in theirs
    for name, value in event.headers:
        assert value.decode("latin-1") in ours.headers.getlist(name.decode("latin-1")), (name, value, head)

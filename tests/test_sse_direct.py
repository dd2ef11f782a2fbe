"""Direct socket writes (web/direct.py): framing stays valid and order is kept, including
when the client's socket is full (partial writes, backlog) and for HTTP/1.0 clients."""

from __future__ import annotations

import json
import socket
from typing import Any

import trio

from .conftest import Running
from .helpers import push, quote


def dechunk(raw: bytes) -> bytes:
    """Decode a chunked body strictly: any framing error raises."""
    out, pos = [], 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[end + 2:end + 2 + size])
        assert raw[end + 2 + size:end + 4 + size] == b"\r\n", "chunk not terminated by CRLF"
        pos = end + 4 + size


def events(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for block in body.split(b"\n\n") for line in block.split(b"\n")
            if line.startswith(b"data: ")]


async def open_raw(gateway: Running, key: str, version: str, rcvbuf: int | None = None,
                   heartbeat_s: int = 30) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    host, port = gateway.url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    path = f"/v1/odds-drop/basketball_nba?apiKey={key}&threshold=1&heartbeat_s={heartbeat_s}"
    sock.sendall(f"GET {path} HTTP/{version}\r\nHost: x\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def read_until(sock: socket.socket, done: bytes | None, timeout: float) -> bytes:
    buf = b""
    with trio.move_on_after(timeout):
        while done is None or done not in buf:
            await trio.lowlevel.wait_readable(sock)
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    return buf


async def test_slow_reader_gets_every_frame_in_order(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(30):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-100, book=f"b{i}") for i in range(20)])
            sock = await open_raw(gateway, key, "1.1", rcvbuf=4096)
            head = await read_until(sock, b'"connected"', 5)
            prices = [-110, -120]
            await push(c, ingest, [quote(-105, book=f"b{i}") for i in range(20)])  # first live batch
            for n in range(150):  # ~3000 drops of ~600 bytes while the client does not read
                await push(c, ingest, [quote(prices[n % 2], book=f"b{i}") for i in range(20)])
            gateway.stop.set()  # ends the stream: final frame, then the chunked terminator
            rest = await read_until(sock, b"\r\n0\r\n\r\n", 20)
            sock.close()
    raw = head + rest
    body = dechunk(raw.split(b"\r\n\r\n", 1)[1])
    frames = events(body)
    drops = [f for f in frames if f["type"] == "odds_drop"]
    assert len(drops) == 20 + 150 * 20
    assert [d["id"] for d in drops] == sorted(d["id"] for d in drops)
    assert frames[-1]["type"] == "stream_status" and frames[-1]["reason"] == "shutdown"


async def test_http10_client_gets_unchunked_frames(gateway: Running) -> None:
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-100)])
            sock = await open_raw(gateway, key, "1.0")
            buf = await read_until(sock, b'"connected"', 5)
            for price in (-110, -120, -130, -140, -150):
                await push(c, ingest, [quote(price)])
            buf += await read_until(sock, b'"new":-150', 5)
            sock.close()
    drops = [f for f in events(buf.split(b"\r\n\r\n", 1)[1]) if f["type"] == "odds_drop"]
    assert [d["new"] for d in drops] == [-110, -120, -130, -140, -150]


async def test_heartbeats_keep_flowing_in_direct_mode(gateway: Running) -> None:
    key = gateway.key()
    with trio.fail_after(15):
        sock = await open_raw(gateway, key, "1.1", heartbeat_s=1)
        raw = await read_until(sock, None, 4.5)
        sock.close()
    body = raw.split(b"\r\n\r\n", 1)[1]
    beats = [f for f in events(dechunk(body + b"0\r\n\r\n")) if f["type"] == "heartbeat"]
    assert len(beats) >= 3  # the first through Hypercorn, later ones written directly


async def test_direct_writer_skips_replayed_ids_and_keeps_order() -> None:
    """Frames already replayed (id <= after) may still be published late: never twice."""
    from types import SimpleNamespace

    from gateway.core.frames import DROP, Frame
    from gateway.web.direct import DirectWriter, sse_encoder

    a, b = socket.socketpair()
    a.setblocking(False)
    conn = SimpleNamespace(send_lock=trio.Lock(), stream=SimpleNamespace(socket=trio.socket.from_stdlib_socket(a)))
    writer = DirectWriter(conn, encode=sse_encoder(False, chunked=False), max_backlog=1 << 20)
    writer.after, writer.active = 5, True

    def frame(seq: int) -> Frame:
        return Frame(seq=seq, stream=DROP, payload={
            "type": "odds_drop", "sport_key": "s", "event_id": "e", "bookmaker": "b", "kind": "game",
            "market_key": "h2h", "delta_cents": 10, "direction": "toward_dog", "id": seq})

    assert writer.deliver([frame(4), frame(5)]) and writer.writes == 0  # all replayed already
    async with conn.send_lock:  # Hypercorn is writing: frames wait in the backlog, in order
        assert writer.deliver([frame(6)])
    assert writer.deliver([frame(7)]) and writer.backlog and not writer.active
    assert writer.take_backlog().count(b"id: ") == 2
    assert writer.resume_direct()
    assert writer.deliver([frame(8)]) and writer.writes == 1
    got = b.recv(65536)
    b.close()
    a.close()
    assert got.startswith(b"id: 8\n")


async def test_slow_consumer_is_cut_with_a_final_error_frame(nursery: trio.Nursery, tmp_path: Any) -> None:
    from .conftest import make_config, start_gateway

    gw = await start_gateway(nursery, make_config(tmp_path, streams={"direct_backlog_bytes": 20_000,
                                                                     "subscriber_buffer": 16}))
    key, ingest = gw.key(), gw.key(scopes=("ingest",))
    try:
        with trio.fail_after(30):
            async with gw.client() as c:
                await push(c, ingest, [quote(-100, book=f"b{i}") for i in range(20)])
                sock = await open_raw(gw, key, "1.1", rcvbuf=4096)
                head = await read_until(sock, b'"connected"', 5)
                await push(c, ingest, [quote(-105, book=f"b{i}") for i in range(20)])
                for n in range(100):  # ~2000 drops of ~600 bytes that the client does not read
                    await push(c, ingest, [quote((-110, -120)[n % 2], book=f"b{i}") for i in range(20)])
                rest = await read_until(sock, b"\r\n0\r\n\r\n", 20)
                sock.close()
                text = (await c.get("/metrics")).text
    finally:
        gw.stop.set()
    frames = events(dechunk((head + rest).split(b"\r\n\r\n", 1)[1]))
    assert frames[-1]["type"] == "error" and frames[-1]["error"] == "slow_consumer"
    assert "gateway_slow_consumer_cuts_total 1.0" in text
    assert 'gateway_stream_connections{transport="sse"}' not in text  # its subscription is gone


async def test_a_client_that_never_reads_is_disconnected_after_the_grace(
        nursery: trio.Nursery, tmp_path: Any, monkeypatch: Any) -> None:
    """Nothing pins a stalled client: after the cut and a short grace its socket is closed."""
    from gateway.web import direct

    from .conftest import make_config, start_gateway

    monkeypatch.setattr(direct, "FINAL_FLUSH_S", 0.5)
    gw = await start_gateway(nursery, make_config(tmp_path, streams={"direct_backlog_bytes": 20_000}))
    key, ingest = gw.key(), gw.key(scopes=("ingest",))
    try:
        with trio.fail_after(30):
            async with gw.client() as c:
                await push(c, ingest, [quote(-100, book=f"b{i}") for i in range(20)])
                sock = await open_raw(gw, key, "1.1", rcvbuf=4096)
                await read_until(sock, b'"connected"', 5)
                await push(c, ingest, [quote(-105, book=f"b{i}") for i in range(20)])
                for n in range(100):
                    await push(c, ingest, [quote((-110, -120)[n % 2], book=f"b{i}") for i in range(20)])
                await trio.sleep(1.5)  # cut, then the grace runs out while the client still reads nothing
                started = trio.current_time()
                await read_until(sock, None, 10)  # drains what the kernel holds, then EOF/reset
                sock.close()
                assert trio.current_time() - started < 9
                text = (await c.get("/metrics")).text
    finally:
        gw.stop.set()
    assert "gateway_slow_consumer_cuts_total 1.0" in text
    assert 'gateway_stream_connections{transport="sse"}' not in text


async def test_a_client_that_takes_nothing_during_a_replay_is_closed_after_the_stall_timeout(tmp_path: Any) -> None:
    """Not subscribed yet (replaying), so no cut can come: the write stall timeout ends it."""
    from gateway import testing

    cfg = testing.gateway_config(tmp_path, streams={"write_stall_timeout_s": 1})
    with trio.fail_after(40):
        async with testing.open_gateway(cfg) as gw:
            for n in range(40):  # 8,000 drops (~5 MB) to replay: more than the kernel buffers hold
                await gw.push_quotes([quote((-110, -130)[n % 2], book=f"b{i}") for i in range(200)])
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            host, port = gw.base_url.removeprefix("http://").split(":")
            sock.connect((host, int(port)))
            sock.sendall(f"GET /v1/odds-drop/basketball_nba?apiKey={gw.key}&threshold=1&last_event_id=0 "
                         "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.setblocking(False)
            await trio.sleep(4)  # the replay stalls, then the stall timeout closes the socket
            assert not gw.gateway.caps.active  # before any read: the stream's task is gone
            got = await read_until(sock, None, 5)
            sock.close()
    assert b'"connected"' in got


async def test_a_live_stream_leaves_hypercorn_and_keeps_every_promise(tmp_path: Any) -> None:
    """detached.py: once live, the stream runs on its own descriptor and task: frames, heartbeats,
    valid chunked framing, the client leaving noticed (slot released), the body ended on shutdown."""
    from gateway import testing

    with trio.fail_after(30):
        async with testing.open_gateway(testing.gateway_config(tmp_path)) as gw:
            await gw.push_quotes([quote(-100, book=f"b{i}") for i in range(5)])
            host, port = gw.base_url.removeprefix("http://").split(":")
            socks = []
            for _ in range(2):
                sock = socket.socket()
                sock.connect((host, int(port)))
                sock.sendall(f"GET /v1/odds-drop/basketball_nba?apiKey={gw.key}&threshold=1&heartbeat_s=1 "
                             "HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                sock.setblocking(False)
                socks.append(sock)
            heads = [await read_until(s, b'"connected"', 5) for s in socks]
            with trio.fail_after(5):
                while gw.gateway.detached_open < 2:  # noqa: ASYNC110 - polling a counter
                    await trio.sleep(0.02)
            await gw.push_quotes([quote(-120, book=f"b{i}") for i in range(5)])
            got = heads[0] + await read_until(socks[0], b'"heartbeat"', 5)
            socks[1].close()  # the client leaves: noticed by the detached task's read
            with trio.fail_after(5):
                while gw.gateway.detached_open > 1 or len(gw.gateway.hub) > 1:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            assert sum(gw.gateway.caps.active.values()) == 1
        rest = await read_until(socks[0], None, 5)  # shutdown: the final frame, then the last chunk
        socks[0].close()
    body = dechunk((got + rest).split(b"\r\n\r\n", 1)[1])  # strict: ends with the last chunk
    frames = events(body)
    assert [f["new"] for f in frames if f["type"] == "odds_drop"] == [-120] * 5
    assert frames[-1]["type"] == "stream_status" and frames[-1]["status"] == "closing"

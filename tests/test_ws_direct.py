"""WebSocket direct writes (web/direct.py with WebSocket framing): the publisher writes text
frames straight to the socket; framing stays valid and in order with partial writes and
Hypercorn's own pings in between, compressed clients accept them, and a client that stops
reading is cut (4008) and then disconnected, its memory freed."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import trio

from gateway import testing
from gateway.hub import Hub

from .helpers import quote

NBA = "/ws/odds/basketball_nba"


def open_raw_ws(base: str, key: str, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    host, port = base.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.sendall((f"GET {NBA}?apiKey={key}&heartbeat_s=30 HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n").encode())
    sock.setblocking(False)
    return sock


async def read_all(sock: socket.socket, timeout: float, until: bytes | None = None) -> bytes:
    buf = b""
    with trio.move_on_after(timeout):
        while until is None or until not in buf:
            await trio.lowlevel.wait_readable(sock)
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Strict RFC 6455 parse of server frames: (opcode, payload); any framing error raises."""
    out, pos = [], 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80, "every frame is a whole message (FIN set)"
        assert not b1 & 0x80, "server frames are never masked"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        if pos + n > len(data):
            break  # a frame cut by the end of what was read
        payload = data[pos:pos + n]
        if b0 & 0x40:
            raise AssertionError("compressed frame: not expected from this test's writes")
        out.append((b0 & 0x0F, payload))
        pos += n
    return out


def ws_subscribers(hub: Hub) -> list[Any]:
    return [s for s in hub._all if s.transport == "ws"]


async def test_a_slow_reader_gets_every_message_in_order_as_valid_frames(tmp_path: Path) -> None:
    cfg = testing.gateway_config(tmp_path, streams={"ws_ping_interval_s": 0.05})  # pings land between frames
    with trio.fail_after(30):
        async with testing.open_gateway(cfg) as gw:
            await gw.push_quotes([quote(-100, book=f"b{i}") for i in range(20)])
            sock = open_raw_ws(gw.base_url, gw.key, rcvbuf=4096)
            head = await read_all(sock, 5, b'"initial_state"')
            assert head.startswith(b"HTTP/1.1 101")
            for n in range(60):  # 1,200 odds updates of ~700 bytes, far beyond the socket buffers
                await gw.push_quotes([quote(-110 - n, book=f"b{i}") for i in range(20)])
            assert [s.deliver is not None for s in ws_subscribers(gw.gateway.hub)] == [True]
            rest = await read_all(sock, 3)
            sock.close()
    frames = parse_frames((head + rest).split(b"\r\n\r\n", 1)[1])
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert {op for op, _ in frames} <= {0x1, 0x9}  # text messages and pings, nothing else
    assert any(op == 0x9 for op, _ in frames)
    updates = [m for m in texts if m["type"] == "odds_update"]
    ids = [m["id"] for m in updates]
    assert len(updates) == 1200 and ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [m["data"][0]["home_ml"] for m in updates[-20:]] == [-169] * 20


async def test_a_client_that_never_reads_is_cut_then_disconnected(tmp_path: Path, monkeypatch: Any) -> None:
    from gateway.web import direct

    monkeypatch.setattr(direct, "FINAL_FLUSH_S", 0.5)
    cfg = testing.gateway_config(tmp_path, streams={"direct_backlog_bytes": 20_000})
    with trio.fail_after(30):
        async with testing.open_gateway(cfg) as gw:
            await gw.push_quotes([quote(-100, book=f"b{i}") for i in range(20)])
            sock = open_raw_ws(gw.base_url, gw.key, rcvbuf=4096)
            await read_all(sock, 5, b'"initial_state"')
            for n in range(100):
                await gw.push_quotes([quote((-110, -120)[n % 2], book=f"b{i}") for i in range(20)])
            await trio.sleep(1.5)  # the cut, then the grace runs out while the client reads nothing
            assert ws_subscribers(gw.gateway.hub) == []
            assert gw.gateway.hub.cuts == 1
            started = trio.current_time()
            await read_all(sock, 10)  # what the kernel holds, then EOF or reset: the socket is closed
            sock.close()
            assert trio.current_time() - started < 9
            with trio.fail_after(5):  # the handler ended: its slot is back
                while gw.gateway.caps.active:  # noqa: ASYNC110 - polling a counter
                    await trio.sleep(0.05)


def websockets_client(ws_url: str, key: str, ready: Any, done: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The `websockets` library with its defaults (permessage-deflate offered and accepted)."""
    from websockets.sync.client import connect

    seen: list[dict[str, Any]] = []
    with connect(f"{ws_url}{NBA}?apiKey={key}") as ws:
        extensions = ",".join(e.name for e in ws.protocol.extensions) or None
        while len(seen) < 2:
            seen.append(json.loads(ws.recv(timeout=5)))
        ready.set()
        while not any(m["type"] == "odds_update" and m["data"][0]["home_ml"] == -150 for m in seen):
            seen.append(json.loads(ws.recv(timeout=5)))
    done.set()
    return extensions, seen


async def test_a_compressing_client_reads_uncompressed_direct_frames(tmp_path: Path) -> None:
    import threading

    with trio.fail_after(30):
        async with testing.open_gateway(testing.gateway_config(tmp_path)) as gw:
            await gw.push_quotes([quote(-100)])
            ready, done = threading.Event(), threading.Event()
            result: list[Any] = []
            async with trio.open_nursery() as nursery:
                async def client() -> None:
                    result.append(await trio.to_thread.run_sync(websockets_client, gw.ws_url, gw.key, ready, done))

                nursery.start_soon(client)
                await trio.to_thread.run_sync(ready.wait)
                for price in range(-101, -151, -1):
                    await gw.push_quotes([quote(price)])
                    if price == -120:
                        assert [s.deliver is not None for s in ws_subscribers(gw.gateway.hub)] == [True]
    extensions, seen = result[0]
    assert extensions == "permessage-deflate"
    prices = [m["data"][0]["home_ml"] for m in seen if m["type"] == "odds_update"]
    assert prices == list(range(-101, -151, -1))


async def test_a_client_cut_while_its_snapshot_is_sent_is_disconnected(tmp_path: Path, monkeypatch: Any) -> None:
    """Cut before going live (the snapshot does not fit its socket): the send is given up."""
    from gateway.web import direct

    monkeypatch.setattr(direct, "FINAL_FLUSH_S", 0.5)
    cfg = testing.gateway_config(tmp_path, streams={"subscriber_buffer": 16})
    with trio.fail_after(30):
        async with testing.open_gateway(cfg) as gw:
            await gw.push_quotes([quote(-100, book=f"b{i}", event=f"2026-05-12_T{j}_U{j}")
                                  for i in range(20) for j in range(20)])  # a ~300 KB snapshot
            sock = open_raw_ws(gw.base_url, gw.key, rcvbuf=4096)
            await read_all(sock, 1, b'"connected"')
            for n in range(5):  # frames for its channel while the snapshot is stuck: a cut
                await gw.push_quotes([quote(-110 - n, book=f"b{i}") for i in range(20)])
            assert gw.gateway.hub.cuts == 1
            await trio.sleep(1.5)  # the grace runs out while the client still reads nothing
            assert not gw.gateway.caps.active  # the handler ended: nothing pins it
            got = await read_all(sock, 10)  # what the kernel held, then EOF or reset
            sock.close()
            assert b'"slow_consumer"' not in got  # it was disconnected, not served to the end

"""Live WebSocket streams leave Hypercorn (issue 16): one task and a socket each, with every
behaviour kept: client messages, pings both ways, the 1011 for a silent client, the close
handshake, and RFC 6455's rules on what a client may send (1002, 1009). The frame reader
is fuzzed with hypothesis on its own."""

from __future__ import annotations

import json
import struct
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Ping, TextMessage

from gateway.metrics import _count_tasks
from gateway.testing import GatewayHandle, gateway_config, open_gateway
from gateway.web.ws_frames import FrameReader

from .processes import ws_frame, ws_handshake


class RawClient:
    """A WebSocket client on a bare trio stream: it sends exactly the frames a test writes."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.buffer = stream, b""

    @classmethod
    async def connect(cls, gw: GatewayHandle, path: str) -> RawClient:
        url = urlsplit(gw.base_url)
        client = cls(await trio.open_tcp_stream(url.hostname or "", url.port or 0))
        await client.stream.send_all(ws_handshake(path))
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += await client.stream.receive_some(65536)
        head, client.buffer = client.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        return client

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame (opcode, payload); (-1, b"") once the connection ended."""
        while True:
            if len(self.buffer) >= 2:
                n, head = self.buffer[1] & 0x7F, 2
                if n == 126:
                    n, head = struct.unpack(">H", self.buffer[2:4])[0], 4
                elif n == 127:
                    n, head = struct.unpack(">Q", self.buffer[2:10])[0], 10
                if len(self.buffer) >= head + n:
                    opcode, payload = self.buffer[0] & 0x0F, self.buffer[head:head + n]
                    self.buffer = self.buffer[head + n:]
                    return opcode, payload
            data = await self.stream.receive_some(65536)
            if not data:
                return -1, b""
            self.buffer += data

    async def json(self, *skip: str) -> dict[str, Any]:
        """The next text frame as JSON (answering pings, skipping frame types in `skip`)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x9:
                await self.send(payload, opcode=0xA)
                continue
            assert opcode == 0x1, (opcode, payload)
            frame: dict[str, Any] = json.loads(payload)
            if frame["type"] not in skip:
                return frame

    async def close_code(self) -> int:
        """Read until the server's close frame; its code."""
        while True:
            opcode, payload = await self.frame()
            if opcode in (0x8, -1):
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1006

    async def send(self, payload: bytes, opcode: int = 1, **kw: Any) -> None:
        await self.stream.send_all(ws_frame(payload, opcode, **kw))


async def _live(gw: GatewayHandle, query: str = "") -> RawClient:
    client = await RawClient.connect(gw, f"/ws/odds/basketball_nba?apiKey={gw.key}{query}")
    assert (await client.json())["type"] == "connected"
    assert (await client.json())["type"] == "initial_state"
    with trio.fail_after(2):
        while not gw.gateway.detached_open:  # noqa: ASYNC110 - the switch happens right after
            await trio.sleep(0.01)
    return client


async def test_a_live_websocket_keeps_one_task_and_its_socket() -> None:
    async with open_gateway() as gw:
        with trio.fail_after(10):
            before = _count_tasks()
            clients = [await _live(gw) for _ in range(20)]
            assert gw.gateway.detached_open == 20
            while _count_tasks() - before > 20:  # noqa: ASYNC110 - Hypercorn's side winds down
                await trio.sleep(0.01)
            await trio.sleep(0.2)
            assert _count_tasks() - before == 20  # one task each (Quart and Hypercorn hold none)
            await gw.move("e1", "pinnacle", "h2h", "home", -110, -125)
            for c in clients:
                assert (await c.json("heartbeat"))["type"] == "odds_update"
            for c in clients:
                await c.send(struct.pack(">H", 1000) + b"bye", opcode=0x8)  # the server answers, lets go
                assert await c.close_code() == 1000
                await c.stream.aclose()
            while gw.gateway.detached_open or gw.gateway.caps.active:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert _count_tasks() - before == 0


async def test_client_messages_after_the_switch() -> None:
    async with open_gateway() as gw:
        await gw.move("e1", "pinnacle", "h2h", "home", -110, -125)
        with trio.fail_after(10):
            c = await _live(gw)
            await c.send(b'{"type":"ping"}')
            assert (await c.json("heartbeat"))["type"] == "pong"
            await c.send(b'{"type":"subscribe","event_id":"e1","snapshot":true}')
            assert (await c.json("heartbeat"))["type"] == "subscribed"
            assert (await c.json("heartbeat"))["count"] == 1
            await c.send(b'{"type":"unsubscribe"}')
            assert (await c.json("heartbeat"))["type"] == "unsubscribed"
            await c.send(b'{"type":"resume","last_event_id":0}')
            resumed = await c.json("heartbeat")
            assert resumed["type"] == "connected" and resumed["resumed_from"] == 0
            assert [(await c.json("heartbeat"))["type"] for _ in range(2)] == ["odds_update", "odds_update"]
            await c.send(b"[[[")
            assert (await c.json("heartbeat"))["error"] == "bad_message"
            # a fragmented message with a ping between its fragments
            await c.send(b'{"type":', fin=False)
            await c.send(b"hi", opcode=0x9)
            await c.send(b'"ping"}', opcode=0x0)
            opcode, payload = await c.frame()
            assert (opcode, payload) == (0xA, b"hi")
            assert (await c.json("heartbeat"))["type"] == "pong"
            await gw.move("e1", "pinnacle", "h2h", "home", -125, -150)  # still live after all that
            assert (await c.json("heartbeat"))["type"] == "odds_update"


async def test_a_resume_whose_replay_races_a_publish_still_reads_the_next_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame committed during a detached resume's replay is queued for it and replayed too:
    the session then went live with a frame queued, could not attach, and waited for the next
    publish (or heartbeat) before this task read the client again; the client's next resume
    went unanswered for that long (a test hung 1 run in 12 under load)."""
    from gateway.streaming import StreamSession

    replays = 0
    original = StreamSession._replay

    async def racing_replay(self: StreamSession) -> Any:
        nonlocal replays
        replays += 1
        if replays == 2:  # the resume's second pass: publish one now, after it subscribed
            await gw.move("e1", "pinnacle", "h2h", "home", -125, -140)
        async for chunk in original(self):
            yield chunk

    async with open_gateway() as gw:
        await gw.move("e1", "pinnacle", "h2h", "home", -110, -125)
        with trio.fail_after(10):
            c = await _live(gw, "&heartbeat_s=30")
            monkeypatch.setattr(StreamSession, "_replay", racing_replay)
            await c.send(b'{"type":"resume","last_event_id":0}')
            assert (await c.json("heartbeat"))["resumed_from"] == 0
            prices = [(await c.json("heartbeat"))["data"][0]["home_ml"] for _ in range(3)]
            assert prices == [-110, -125, -140] and replays == 2
        with trio.fail_after(3):  # not a heartbeat (30 s) later
            await c.send(b'{"type":"resume","last_event_id":1000000000}')
            assert (await c.json("heartbeat"))["type"] == "connected"
            assert (await c.json("heartbeat"))["reason"] == "unknown_id"


@pytest.mark.parametrize(("frame", "code"), [
    (ws_frame(b'{"type":"ping"}', mask=False), 1002),  # a client must mask its frames
    (ws_frame(b"x", opcode=0x3), 1002),  # a reserved opcode
    (ws_frame(b"x" * 1_100_000), 1009),  # past the message size limit
])
async def test_what_rfc_6455_forbids_closes_the_connection(frame: bytes, code: int) -> None:
    async with open_gateway() as gw:
        with trio.fail_after(10):
            c = await _live(gw)
            await c.stream.send_all(frame)
            assert await c.close_code() == code
            while gw.gateway.detached_open:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert not gw.gateway.caps.active


async def test_a_silent_client_is_closed_1011_and_one_that_pongs_is_not(tmp_path: Any) -> None:
    config = gateway_config(tmp_path, streams={"ws_ping_interval_s": 0.2, "ws_idle_timeout_s": 0.8})
    async with open_gateway(config) as gw:
        with trio.fail_after(10):
            silent, answering = await _live(gw), await _live(gw)
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                async def keep_answering() -> None:  # the other reads (and so answers pings) all along
                    while True:
                        await answering.json("heartbeat")

                nursery.start_soon(keep_answering)
                while True:  # the silent one reads but never answers a ping
                    opcode, payload = await silent.frame()
                    if opcode == 0x8:
                        assert struct.unpack(">H", payload[:2])[0] == 1011
                        break
                assert 0.7 < trio.current_time() - started < 3
                await trio.sleep(1.5)  # three idle timeouts later, the answering one is still there
                nursery.cancel_scope.cancel()
            await answering.send(b'{"type":"ping"}')
            assert (await answering.json("heartbeat"))["type"] == "pong"


# -- the frame reader, on its own -------------------------------------------------------------

def _server() -> FrameReader:
    conn = Connection(ConnectionType.SERVER)
    return FrameReader(conn, max_message=4096)


messages = st.lists(st.text(max_size=300), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(messages=messages, fragment=st.integers(1, 50), chunk=st.integers(1, 64), pings=st.booleans())
def test_any_fragmentation_and_chunking_gives_the_same_messages(messages: list[str], fragment: int, chunk: int,
                                                                 pings: bool) -> None:
    wire = b""
    for text in messages:
        data = text.encode()
        parts = [data[i:i + fragment] for i in range(0, len(data), fragment)] or [b""]
        for i, part in enumerate(parts):
            wire += ws_frame(part, 0x1 if i == 0 else 0x0, fin=i == len(parts) - 1)
            if pings and i < len(parts) - 1:
                wire += ws_frame(b"p", 0x9)  # a control frame between fragments
    reader = _server()
    got: list[str | bytes] = []
    pongs = b""
    for i in range(0, len(wire), chunk):
        read = reader.feed(wire[i:i + chunk])
        assert read.closing is None
        got += read.messages
        pongs += read.replies
    assert got == messages
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(pongs)
    assert all(e.payload == b"p" for e in client.events())


@settings(max_examples=200, deadline=None)
@given(opcode=st.sampled_from([0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]), payload=st.binary(max_size=20))
def test_reserved_opcodes_close_1002(opcode: int, payload: bytes) -> None:
    read = _server().feed(ws_frame(payload, opcode))
    assert read.closing is not None and read.closing.code == 1002 and not read.closing.by_client


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(min_size=1, max_size=50))
def test_unmasked_client_frames_close_1002(payload: bytes) -> None:
    read = _server().feed(ws_frame(payload, 0x2, mask=False))
    assert read.closing is not None and read.closing.code == 1002


def test_a_message_past_the_limit_closes_1009_even_in_small_fragments() -> None:
    reader = _server()
    for i in range(100):
        read = reader.feed(ws_frame(b"x" * 100, 0x1 if i == 0 else 0x0, fin=False))
        if read.closing is not None:
            break
    assert read.closing is not None and read.closing.code == 1009
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(read.closing.reply)
    assert [type(e).__name__ for e in client.events()] == ["CloseConnection"]


def test_a_client_close_is_answered() -> None:
    reader = _server()
    client = Connection(ConnectionType.CLIENT)
    from wsproto.events import CloseConnection

    read = reader.feed(client.send(CloseConnection(code=1000, reason="bye")))
    assert read.closing is not None and read.closing.by_client and read.closing.code == 1000
    client.receive_data(read.closing.reply)
    assert [(type(e).__name__, e.code) for e in client.events()] == [("CloseConnection", 1000)]


def test_binary_and_text_messages_and_pings_from_a_real_client() -> None:
    client = Connection(ConnectionType.CLIENT)
    wire = client.send(TextMessage(data="héllo")) + client.send(Ping(b"1")) + client.send(TextMessage(data="x"))
    read = _server().feed(wire)
    assert read.messages == ["héllo", "x"] and read.replies

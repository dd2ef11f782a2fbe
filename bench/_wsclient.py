"""Raw-socket WebSocket subscribers: one client process drives many sockets with a selectors loop.

The twin of `_sseclient.py`, cheap on purpose (the client must not be the bottleneck):
- the opening handshake (RFC 6455 4.1; `Sec-WebSocket-Accept` is checked);
- server frames parsed by hand: 7-, 16- and 64-bit payload lengths, fragmented messages
  (continuation frames), masked server frames tolerated although a server must not mask;
- pings answered with masked pongs carrying the same payload, a close answered with a
  masked close carrying the same code; the client sends nothing else;
- from a drop message only `"timestamp":` and `"id":` are read, without JSON parsing.
Latency of a drop = receipt wall time (ms) - its `timestamp`.

Protocol with the parent over a multiprocessing Pipe (the same as `_sseclient.py`):
  child -> ("connected", stats)       once every socket got its 101 (or gave up)
  parent -> ("window", t0_ms, t1_ms, stop_at_s)   count messages received in [t0, t1); exit at stop_at
  parent -> ("stop",)                  close everything now
  child -> ("result", dict)            before exiting
"""

from __future__ import annotations

import array
import base64
import contextlib
import errno
import hashlib
import os
import resource
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

MAX_INFLIGHT = 32  # handshakes in flight per client process
CONNECT_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DROP_PREFIX = b'{"type":"odds_drop"'
TS_KEY = b'"timestamp":'
ID_KEY = b'"id":'
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


@dataclass(slots=True)
class _Sock:
    target: tuple[str, str]
    attempt: int = 1
    sock: socket.socket | None = None
    state: str = "connecting"  # connecting -> head -> open -> closed
    key: bytes = b""
    raw: bytearray = field(default_factory=bytearray)
    frag: bytearray | None = None  # a fragmented message being reassembled


@dataclass
class Counters:
    connected: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    connect_errors: dict[str, int] = field(default_factory=dict)
    close_codes: dict[int, int] = field(default_factory=dict)  # close frames received, by code
    disconnects: int = 0  # the server ended a socket that we did not close (with or without a close frame)
    slow_consumer: int = 0  # `error` messages with slow_consumer
    error_messages: int = 0
    closing_frames: int = 0
    heartbeats: int = 0
    connected_frames: int = 0
    initial_states: int = 0
    pings: int = 0
    drops_total: int = 0
    drops_window: int = 0
    bytes_window: int = 0
    messages_window: int = 0
    recvs_window: int = 0  # recv() calls that returned data in the window
    fragmented: int = 0
    masked_from_server: int = 0
    handshake_ms: list[float] = field(default_factory=list)


def _request(path: str, key: str, host: str, port: int, ws_key: bytes) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {ws_key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-API-Key: {key}\r\n\r\n").encode()


def _accept_of(ws_key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(ws_key + GUID).digest())


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One masked client frame (FIN set); control payloads are <= 125 bytes."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + mask + unmask(payload, mask)


def unmask(data: bytes | bytearray, mask: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


def parse_frames(buf: bytearray) -> tuple[list[tuple[int, bool, bytes, bool]], int]:
    """Complete frames at the start of `buf`: ([(opcode, fin, payload, was_masked)], bytes used)."""
    out = []
    pos, n = 0, len(buf)
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        hl = 2
        if length == 126:
            if n - pos < 4:
                break
            length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            hl = 4
        elif length == 127:
            if n - pos < 10:
                break
            length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            hl = 10
        masked = bool(b1 & 0x80)
        if masked:
            hl += 4
        if n - pos < hl + length:
            break
        payload = bytes(buf[pos + hl:pos + hl + length])
        if masked:
            payload = unmask(payload, bytes(buf[pos + hl - 4:pos + hl]))
        out.append((b0 & 0x0F, bool(b0 & 0x80), payload, masked))
        pos += hl + length
    return out, pos


def run_client(conn: Connection, host: str, port: int, targets: list[tuple[str, str]], nofile: int = 0) -> None:
    """Entry point of a client process: `targets` is a list of (path with query, api key)."""
    if nofile:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, nofile), hard), hard))
    sel = selectors.DefaultSelector()
    c = Counters()
    latencies = array.array("d")
    ids: set[int] = set()
    window = [float("inf"), float("inf")]  # [t0_ms, t1_ms)
    rbuf = bytearray(262144)
    view = memoryview(rbuf)
    stop_at = float("inf")
    pending: deque[_Sock] = deque(_Sock(t) for t in targets)
    retry: list[tuple[float, _Sock]] = []
    inflight = 0
    started: dict[int, float] = {}
    reported = False
    t_begin = time.monotonic()
    sel.register(conn.fileno(), selectors.EVENT_READ, None)

    def drop_sock(s: _Sock) -> None:
        if s.sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                sel.unregister(s.sock)
            s.sock.close()
            s.sock = None
        s.state = "closed"

    def fail(s: _Sock, reason: str, status: int = 0) -> None:
        nonlocal inflight
        inflight -= 1
        drop_sock(s)
        if status:
            c.statuses[status] = c.statuses.get(status, 0) + 1
        else:
            c.connect_errors[reason] = c.connect_errors.get(reason, 0) + 1
        if status in (0, 429, 503) and s.attempt < MAX_ATTEMPTS:
            s.attempt += 1
            s.state = "connecting"
            s.raw.clear()
            retry.append((time.monotonic() + 0.5 * s.attempt, s))
        else:
            c.failed += 1

    def start(s: _Sock) -> None:
        nonlocal inflight
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sock = sock
        s.key = base64.b64encode(os.urandom(16))
        inflight += 1
        started[id(s)] = time.monotonic()
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            fail(s, errno.errorcode.get(err, str(err)))
            return
        sel.register(sock, selectors.EVENT_WRITE, s)

    def send(s: _Sock, data: bytes) -> None:
        if s.sock is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                s.sock.send(data)

    def message(msg: bytes, now_ms: float, in_window: bool) -> None:
        if in_window:
            c.messages_window += 1
        if msg.startswith(DROP_PREFIX):
            c.drops_total += 1
            if in_window:
                c.drops_window += 1
                i = msg.rfind(ID_KEY) + len(ID_KEY)
                j = i
                while j < len(msg) and 48 <= msg[j] <= 57:
                    j += 1
                ids.add(int(msg[i:j]))
                i = msg.find(TS_KEY) + len(TS_KEY)
                j = i
                while 48 <= msg[j] <= 57:
                    j += 1
                latencies.append(now_ms - int(msg[i:j]))
        elif msg.startswith(b'{"type":"heartbeat"'):
            c.heartbeats += 1
        elif msg.startswith(b'{"type":"connected"'):
            c.connected_frames += 1
        elif msg.startswith(b'{"type":"initial_state"'):
            c.initial_states += 1
        elif msg.startswith(b'{"type":"error"'):
            c.error_messages += 1
            if b"slow_consumer" in msg:
                c.slow_consumer += 1
        elif msg.startswith(b'{"type":"stream_status"') and b'"closing"' in msg:
            c.closing_frames += 1

    def frames(s: _Sock, now_ms: float) -> None:
        got, used = parse_frames(s.raw)
        if used:
            del s.raw[:used]
        in_window = window[0] <= now_ms < window[1]
        for opcode, fin, payload, masked in got:
            if masked:
                c.masked_from_server += 1
            if opcode in (OP_TEXT, OP_BINARY):
                if fin:
                    message(payload, now_ms, in_window)
                else:
                    c.fragmented += 1
                    s.frag = bytearray(payload)
            elif opcode == OP_CONT:
                if s.frag is not None:
                    s.frag += payload
                    if fin:
                        message(bytes(s.frag), now_ms, in_window)
                        s.frag = None
            elif opcode == OP_PING:
                c.pings += 1
                send(s, client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                c.close_codes[code] = c.close_codes.get(code, 0) + 1
                send(s, client_frame(OP_CLOSE, payload[:2]))
                c.disconnects += 1
                drop_sock(s)
                return

    def head(s: _Sock, now_ms: float) -> None:
        nonlocal inflight
        end = s.raw.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(s.raw[:end]).split(b"\r\n")
        status = int(lines[0].split()[1])
        if status != 101:
            fail(s, "status", status)
            return
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        if hdrs.get(b"sec-websocket-accept") != _accept_of(s.key):
            fail(s, "bad_accept")
            return
        del s.raw[:end + 4]
        s.state = "open"
        inflight -= 1
        c.connected += 1
        c.handshake_ms.append((time.monotonic() - started.pop(id(s), time.monotonic())) * 1000)
        if s.raw:
            frames(s, now_ms)

    def close_all() -> None:
        for key in list(sel.get_map().values()):
            s = key.data
            if isinstance(s, _Sock) and s.sock is not None:
                if s.state == "open":
                    send(s, client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
                drop_sock(s)

    try:
        while True:
            mono = time.monotonic()
            if time.time() >= stop_at:
                break
            while pending and inflight < MAX_INFLIGHT:
                start(pending.popleft())
            if retry:
                due = [r for r in retry if r[0] <= mono]
                if due:
                    retry[:] = [r for r in retry if r[0] > mono]
                    pending.extend(s for _, s in due)
            if not reported and not pending and not retry and inflight == 0:
                conn.send(("connected", _summary(c, time.monotonic() - t_begin)))
                reported = True
            if not reported and mono - t_begin > CONNECT_TIMEOUT_S:
                conn.send(("connected", _summary(c, time.monotonic() - t_begin, timed_out=True)))
                reported = True
            for key, mask in sel.select(timeout=0.05):
                s = key.data
                if s is None:  # the control pipe
                    msg = conn.recv()
                    if msg[0] == "window":
                        window[0], window[1], stop_at = msg[1], msg[2], msg[3]
                    elif msg[0] == "stop":
                        stop_at = 0.0
                    continue
                sock = s.sock
                if sock is None:
                    continue
                if mask & selectors.EVENT_WRITE and s.state == "connecting":
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(s, errno.errorcode.get(err, str(err)))
                        continue
                    sock.send(_request(*s.target, host, port, s.key))
                    s.state = "head"
                    sel.modify(sock, selectors.EVENT_READ, s)
                    continue
                try:
                    data = view[:sock.recv_into(rbuf)]  # into one buffer: recv(256 KiB) costs ~30 us more
                except (ConnectionResetError, BrokenPipeError) as exc:
                    if s.state == "head":
                        fail(s, type(exc).__name__)
                        continue
                    data = b""
                except BlockingIOError:
                    continue
                now_ms = time.time() * 1000.0
                if not data:
                    if s.state == "head":
                        fail(s, "eof_before_head")
                        continue
                    c.disconnects += 1
                    drop_sock(s)
                    continue
                s.raw += data
                if s.state == "open":
                    if window[0] <= now_ms < window[1]:
                        c.bytes_window += len(data)
                        c.recvs_window += 1
                    frames(s, now_ms)
                else:
                    head(s, now_ms)
    finally:
        close_all()
    result = _summary(c, time.monotonic() - t_begin)
    result["latencies"] = latencies.tobytes()
    result["ids"] = sorted(ids)
    conn.send(("result", result))
    conn.close()


def _summary(c: Counters, elapsed: float, timed_out: bool = False) -> dict[str, Any]:
    d = {k: v for k, v in c.__dict__.items() if k != "handshake_ms"}
    d["handshake_ms"] = list(c.handshake_ms)
    d["elapsed_s"] = elapsed
    d["timed_out"] = timed_out
    return d

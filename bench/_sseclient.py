"""Raw-socket SSE subscribers: one client process drives many sockets with a selectors loop.

Cheap on purpose (the client must not be the bottleneck): HTTP/1.1 chunked bodies are
de-chunked properly (a chunk-size line may fall anywhere, also inside a frame), frames are
split on the blank line, and only `id:` and `"timestamp":` are read from drop frames,
without JSON parsing. Latency of a drop = receipt wall time (ms) - its `timestamp`, where
receipt is when `select()` reported the socket readable: a process holding hundreds of sockets
reads them one after another, and that queue is the load client's, not the server's. The
latency at the `recv()` of each socket (that queue included) is kept too (`latencies_recv`).

Protocol with the parent over a multiprocessing Pipe:
  child -> ("connected", stats)       once every socket got its response head (or gave up)
  parent -> ("window", t0_ms, t1_ms, stop_at_s)   count frames received in [t0, t1); exit at stop_at
  parent -> ("stop",)                  close everything now
  child -> ("result", dict)            before exiting
"""

from __future__ import annotations

import array
import contextlib
import errno
import resource
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

MAX_INFLIGHT = 32  # handshakes in flight per client process (stays under the server's accept backlog)
CONNECT_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3
DROP_PREFIX = b'data: {"type":"odds_drop"'
TS_KEY = b'"timestamp":'


@dataclass(slots=True)
class _Sock:
    target: tuple[str, str]
    attempt: int = 1
    sock: socket.socket | None = None
    state: str = "connecting"  # connecting -> head -> body -> closed
    raw: bytearray = field(default_factory=bytearray)
    sse: bytearray = field(default_factory=bytearray)
    chunked: bool = True
    need: int = 0  # bytes left in the current chunk, including its trailing CRLF


@dataclass
class Counters:
    connected: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    connect_errors: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0  # the server ended a stream that we did not close
    slow_consumer: int = 0
    closing_frames: int = 0
    heartbeats: int = 0
    connected_frames: int = 0
    drops_total: int = 0
    drops_window: int = 0
    bytes_window: int = 0
    writes_window: int = 0  # HTTP chunks received in the window: one per server write
    handshake_ms: list[float] = field(default_factory=list)


def _request(path: str, key: str, host: str, port: int) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Cache-Control: no-cache\r\nX-API-Key: {key}\r\n\r\n").encode()


def run_client(conn: Connection, host: str, port: int, targets: list[tuple[str, str]], nofile: int = 0) -> None:
    """Entry point of a client process: `targets` is a list of (path with query, api key)."""
    if nofile:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, nofile), hard), hard))
    sel = selectors.DefaultSelector()
    c = Counters()
    latencies = array.array("d")
    latencies_recv = array.array("d")
    ready = [0.0]  # wall ms when the current select() returned
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

    def fail(s: _Sock, reason: str, status: int = 0) -> None:
        nonlocal inflight
        inflight -= 1
        if s.sock is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                sel.unregister(s.sock)
            s.sock.close()
            s.sock = None
        if status:
            c.statuses[status] = c.statuses.get(status, 0) + 1
        else:
            c.connect_errors[reason] = c.connect_errors.get(reason, 0) + 1
        retryable = status in (0, 429, 503)
        if retryable and s.attempt < MAX_ATTEMPTS:
            s.attempt += 1
            s.state = "connecting"
            s.raw.clear()
            retry.append((time.monotonic() + 0.5 * s.attempt, s))
        else:
            s.state = "closed"
            c.failed += 1

    def start(s: _Sock) -> None:
        nonlocal inflight
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sock = sock
        inflight += 1
        started[id(s)] = time.monotonic()
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            fail(s, errno.errorcode.get(err, str(err)))
            return
        sel.register(sock, selectors.EVENT_WRITE, s)

    def frames(s: _Sock, now_ms: float) -> None:
        buf = s.sse
        pos = 0
        in_window = window[0] <= now_ms < window[1]
        while True:
            end = buf.find(b"\n\n", pos)
            if end < 0:
                break
            if buf.startswith(b"id: ", pos):
                nl = buf.find(b"\n", pos)
                if buf.startswith(DROP_PREFIX, nl + 1):
                    c.drops_total += 1
                    if in_window:
                        c.drops_window += 1
                        ids.add(int(buf[pos + 4:nl]))
                        i = buf.find(TS_KEY, nl, end) + len(TS_KEY)
                        j = i
                        while 48 <= buf[j] <= 57:
                            j += 1
                        ts = int(buf[i:j])
                        latencies.append(ready[0] - ts)
                        latencies_recv.append(now_ms - ts)
            elif buf.startswith(b'data: {"type":"heartbeat"', pos):
                c.heartbeats += 1
            elif buf.startswith(b'data: {"type":"connected"', pos):
                c.connected_frames += 1
            elif buf.startswith(b'data: {"type":"error"', pos):
                if b"slow_consumer" in buf[pos:end]:
                    c.slow_consumer += 1
            elif buf.startswith(b'data: {"type":"stream_status"', pos) and b'"closing"' in buf[pos:end]:
                c.closing_frames += 1
            pos = end + 2
        if pos:
            del buf[:pos]

    def body(s: _Sock, data: bytes | bytearray | memoryview, now_ms: float) -> None:
        in_window = window[0] <= now_ms < window[1]
        if in_window:
            c.bytes_window += len(data)
        if not s.chunked:
            s.sse += data
            frames(s, now_ms)
            return
        raw = s.raw
        raw += data
        pos, n, out = 0, len(raw), s.sse
        while pos < n:
            if s.need > 0:
                take = min(s.need, n - pos)
                data_left = s.need - 2
                if data_left > 0:
                    out += raw[pos:pos + min(take, data_left)]
                pos += take
                s.need -= take
            else:
                eol = raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(raw[pos:eol]).split(b";", 1)[0], 16)
                pos = eol + 2
                if size == 0:  # last chunk: the server ended the stream
                    pos = n
                    break
                s.need = size + 2
                if in_window:
                    c.writes_window += 1
        del raw[:pos]
        frames(s, now_ms)

    def head(s: _Sock, now_ms: float) -> None:
        nonlocal inflight
        end = s.raw.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(s.raw[:end]).split(b"\r\n")
        status = int(lines[0].split()[1])
        if status != 200:
            fail(s, "status", status)
            return
        hdrs = b"\n".join(lines[1:]).lower()
        s.chunked = b"transfer-encoding: chunked" in hdrs
        rest = bytes(s.raw[end + 4:])
        s.raw.clear()
        s.state = "body"
        inflight -= 1
        c.connected += 1
        c.handshake_ms.append((time.monotonic() - started.pop(id(s), time.monotonic())) * 1000)
        if rest:
            body(s, rest, now_ms)

    def close_all() -> None:
        for key in list(sel.get_map().values()):
            s = key.data
            if isinstance(s, _Sock) and s.sock is not None:
                sel.unregister(s.sock)
                s.sock.close()
                s.sock = None
                s.state = "closed"

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
            events = sel.select(timeout=0.05)
            ready[0] = time.time() * 1000.0
            for key, mask in events:
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
                    sock.send(_request(*s.target, host, port))
                    s.state = "head"
                    sel.modify(sock, selectors.EVENT_READ, s)
                    continue
                try:
                    data = view[:sock.recv_into(rbuf)]  # into one buffer: recv(256 KiB) costs ~30 us more
                except (ConnectionResetError, BrokenPipeError) as exc:
                    data = b""
                    if s.state == "head":
                        fail(s, type(exc).__name__)
                        continue
                except BlockingIOError:
                    continue
                now_ms = time.time() * 1000.0
                if not data:
                    if s.state == "head":
                        fail(s, "eof_before_head")
                        continue
                    c.disconnects += 1
                    sel.unregister(sock)
                    sock.close()
                    s.sock = None
                    s.state = "closed"
                    continue
                if s.state == "body":
                    body(s, data, now_ms)
                else:
                    s.raw += data
                    head(s, now_ms)
    finally:
        close_all()
    result = _summary(c, time.monotonic() - t_begin)
    result["latencies"] = latencies.tobytes()
    result["latencies_recv"] = latencies_recv.tobytes()
    result["ids"] = sorted(ids)
    conn.send(("result", result))
    conn.close()


def _summary(c: Counters, elapsed: float, timed_out: bool = False) -> dict[str, Any]:
    d = {k: v for k, v in c.__dict__.items() if k != "handshake_ms"}
    d["handshake_ms"] = list(c.handshake_ms)
    d["elapsed_s"] = elapsed
    d["timed_out"] = timed_out
    return d


def latencies_of(result: dict[str, Any], key: str = "latencies") -> array.array[float]:
    out = array.array("d")
    out.frombytes(result.get(key, b""))
    return out

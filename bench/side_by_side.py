"""Side by side (issue 8): the gateway vs a FastAPI + sse-starlette hub vs nginx + nchan.

    python bench/side_by_side.py [--subscribers 1000] [--topics 10] [--clients 2]
                                 [--ladder 5000,10000,...] [--servers gateway,starlette,nchan]
                                 [--duration 8] [--warmup 2] [--p99-limit 100] [--no-profile]
                                 [--starlette-stack standard|plain] [--no-pin] [--json FILE]
                                 [--unbatched [--publishers 4]] [--repeat 1]

Needs the peers: `pip install -e '.[bench]'` and `apt-get install nginx libnginx-mod-nchan`.

The same workload for the three servers, one server at a time, with the same load client:

- N SSE subscribers on T topics (subscriber i on topic i mod T), held by K client
  processes (raw non-blocking sockets, one selectors loop each, proper HTTP/1.1
  de-chunking; latency and window membership read with one regex per read, no JSON parse).
- A publisher process sends R events/s in total, every 20 ms, round robin over the topics,
  so deliveries/s = R x N / T. It stamps each event with its wall time in ms just before
  publishing, and the subscribers' latency is receipt time - that stamp, for all three.
  - gateway: POST /v1/ingest/odds, one request per tick carrying the tick's flat quotes,
    each a price move of 1-9 cents with `observed_at_ms` = the stamp. Subscribers read
    /v1/odds-drop/{sport}?threshold=1, so every quote is one drop frame, whose
    `last_update` is the publisher's stamp (its `timestamp`, the server's detection time,
    gives a second latency). The POST returns after the SQLite commit, as for any pusher.
  - starlette (bench/peers/starlette_hub.py on uvicorn): POST /publish, one request per
    tick carrying the tick's events as a JSON list.
  - nchan (bench/peers/nchan.conf, one nginx worker): nchan takes one message per POST, so
    each event is its own POST /pub?id=TOPIC; a tick's POSTs are pipelined on one
    keep-alive connection (one write, then the replies are read).
  If a request takes longer than a tick, the next one carries everything due (the rate holds).
  The peers' events are shaped like the gateway's drop frames (same fields, ~560 B).
- `--unbatched` (issue 19): one event per request for every server instead (the gateway: a
  POST /v1/ingest/odds of exactly one flat quote; starlette: a POST /publish of a one-event
  list; nchan: one POST /pub), sent open loop as bench/ingest_cost.py does: event i is due at
  start + i/R and goes out on the first idle one of `--publishers` (4) persistent HTTP/1.1
  keep-alive connections, each with at most one request in flight (taken round robin, so
  each stays in use; the gateway serves a keep-alive ingest connection without Hypercorn
  after its first 200). Each event is stamped just before its request is sent. With
  `--topics 1` every event reaches every subscriber: deliveries/s = R x N, e.g.
  `--subscribers 200 --topics 1 --ladder 40000` is 200 events/s, and the verdict lines check
  issue 19's targets at 200 x 200/s and 1000 x 50/s (gateway against nchan, run by run).
- Per server, a ladder of deliveries/s targets; a fresh server and fresh subscribers per
  step; `--warmup` s of load, then a `--duration` s window. A step passes if every
  subscriber connected, every event stamped in the window reached every subscriber of its
  topic exactly once (nothing evicted, dropped or cut), the publisher held the rate, and
  p99 < `--p99-limit` ms. A server leaves the ladder after `--keep-going`+1 failed steps.
- CPU is user+system over the window from /proc, summed over the server's process tree
  (nginx master + worker; the gateway's threads), and per client / publisher process.
  RSS per subscriber = (RSS with the N idle subscribers connected - RSS before) / N.
- `--pin` (default): the server (and everything it spawns) runs on the first CPU, the load
  client on the others, so neither starves the other; "core busy" is per CPU from /proc/stat
  (softirq included). A failed step whose load client used >= 90 % of its core is marked
  client-bound. The machine is shared: each step first waits (bounded) for it to be quiet,
  and a failed step that ran beside more than `--retry-above` cores of other load runs again.
- "pub lag": how long events waited in the publisher past their due time because the
  previous request had not returned (the gateway's ingest POST returns after the commit;
  unbatched: because no publisher connection was idle); that wait is not in the latency,
  which starts at the stamp. "RTT": a request's round trip, send -> whole reply (batched
  nchan: a tick's pipelined POSTs).
- `--repeat K` runs every step K times, the servers alternating within each round; the
  unbatched verdicts pair the gateway's and nchan's steps of the same round.

At the end: a table per step, each server's ceiling (the most deliveries/s of a passing
step) and the ratios asked for by the issue; then, unless --no-profile, a py-spy profile of
the gateway re-run at its ceiling (needs /tmp/pyspy/bin/py-spy; its figures are not used).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    BOOKS,
    HOST,
    PROFILER,
    ROOT,
    SPORTS,
    CpuMeter,
    SystemCpu,
    add_quiet_args,
    free_port,
    machine_info,
    print_table,
    profile_server,
    raise_nofile,
    rss_kib,
    start_server,
    wait_quiet,
)
from bench._loadgen import build_market, cents_to_price, take_reply

SERVERS = ("gateway", "starlette", "nchan")
SUBS_PER_KEY = 400  # gateway enterprise keys: 1000 streams per key, 600-request burst
LADDER = (5_000, 10_000, 20_000, 40_000, 70_000, 100_000, 130_000, 160_000, 200_000, 250_000)
NCHAN_CONF = Path(__file__).resolve().parent / "peers" / "nchan.conf"
BIN_PER_MS = 10  # latency histogram resolution: 0.1 ms
HIST_CAP = 60_000 * BIN_PER_MS  # 60 s
# the publisher's stamp and the next field; spaces allowed (any JSON encoder)
STAMPS = re.compile(rb'"last_update": ?(\d+), ?"timestamp": ?(\d+)')


# == the load client: subscriber processes ===========================================================

@dataclass(slots=True)
class _Sub:
    path: str
    header: str  # extra request header lines, each ending in CRLF
    attempt: int = 1
    sock: socket.socket | None = None
    state: str = "connecting"  # connecting -> head -> body -> closed
    raw: bytearray = field(default_factory=bytearray)
    text: bytearray = field(default_factory=bytearray)
    chunked: bool = False
    need: int = 0  # bytes left in the current chunk, including its CRLF
    t_start: float = 0.0


def run_subscribers(conn: Connection, host: str, port: int, targets: list[tuple[str, str]], nofile: int,
                    two_stamps: bool = False) -> None:
    """A client process: `targets` = (path, extra header lines). Protocol over `conn`:
    -> ("connected", stats); <- ("window", t0_ms, t1_ms, stop_at_s); -> ("result", dict).
    `two_stamps`: also histogram the second stamp (the gateway's `timestamp`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, nofile), hard), hard))
    ep = select.epoll()
    ctl = conn.fileno()
    ep.register(ctl, select.EPOLLIN)
    subs: dict[int, _Sub] = {}
    pending = [_Sub(p, h) for p, h in targets]
    pending.reverse()
    retry: list[tuple[float, _Sub]] = []
    inflight = 0
    st: dict[str, Any] = {"connected": 0, "failed": 0, "statuses": {}, "errors": {}, "ended": 0,
                          "handshake_ms": []}
    frames = frames_window = bytes_window = chunks_window = reads_window = 0
    hist_pub = [0] * (HIST_CAP + 1)
    hist_srv = [0] * (HIST_CAP + 1)
    t0 = t1 = math.inf
    stop_at = math.inf
    reported = False
    begin = time.monotonic()
    wall = time.time
    findall = STAMPS.findall
    cap = HIST_CAP

    def close(s: _Sub) -> None:
        if s.sock is not None:
            fd = s.sock.fileno()
            subs.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                ep.unregister(fd)
            s.sock.close()
            s.sock = None
        s.state = "closed"

    def fail(s: _Sub, reason: str, status: int = 0) -> None:
        nonlocal inflight
        inflight -= 1
        close(s)
        if status:
            st["statuses"][status] = st["statuses"].get(status, 0) + 1
        else:
            st["errors"][reason] = st["errors"].get(reason, 0) + 1
        if status in (0, 429, 503) and s.attempt < 3:
            s.attempt += 1
            s.state = "connecting"
            s.raw.clear()
            retry.append((time.monotonic() + 0.3 * s.attempt, s))
        else:
            st["failed"] += 1

    def start(s: _Sub) -> None:
        nonlocal inflight
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sock = sock
        s.t_start = time.monotonic()
        inflight += 1
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            fail(s, errno.errorcode.get(err, str(err)))
            return
        subs[sock.fileno()] = s
        ep.register(sock.fileno(), select.EPOLLOUT)

    def scan(data: bytes | bytearray, end: int, now_ms: float) -> None:
        """Count the frames in data[:end] (complete lines) and histogram their latency."""
        nonlocal frames, frames_window
        pairs = findall(data, 0, end)
        if not pairs:
            return
        frames += len(pairs)
        now10 = now_ms * BIN_PER_MS
        n = 0
        for a, b in pairs:
            ts = int(a)
            if t0 <= ts < t1:
                n += 1
                d = int(now10 - ts * BIN_PER_MS)
                hist_pub[d if 0 <= d < cap else (0 if d < 0 else cap)] += 1
                if two_stamps:
                    d = int(now10 - int(b) * BIN_PER_MS)
                    hist_srv[d if 0 <= d < cap else (0 if d < 0 else cap)] += 1
        frames_window += n

    def text_in(s: _Sub, data: bytes | bytearray, now_ms: float) -> None:
        text = s.text
        if not text:  # the usual case: no partial line left over
            end = data.rfind(b"\n")
            if end >= 0:
                scan(data, end, now_ms)
            if end + 1 < len(data):
                text += data[end + 1:]
            return
        text += data
        end = text.rfind(b"\n")
        if end >= 0:
            scan(text, end, now_ms)
            del text[:end + 1]

    def dechunk(s: _Sub, data: bytes, now_ms: float) -> int:
        """HTTP/1.1 chunked body -> s.text; returns the chunks started, -1 when the stream ended."""
        raw = s.raw
        if not raw and s.need == 0:  # fast path: whole chunks, as the servers write them
            pos, n, chunks = 0, len(data), 0
            parts: list[bytes] = []
            while pos < n:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(data[pos:eol], 16)
                if size == 0:
                    text_in(s, b"".join(parts), now_ms)
                    return -1
                start_, stop = eol + 2, eol + 2 + size
                if stop + 2 > n:
                    break
                parts.append(data[start_:stop])
                chunks += 1
                pos = stop + 2
            if parts:
                text_in(s, b"".join(parts) if len(parts) != 1 else parts[0], now_ms)
            if pos < n:  # a chunk split across reads: the slow path from here on
                raw += data[pos:]
                chunks += _dechunk_slow(s)
            return chunks
        raw += data
        chunks = _dechunk_slow(s)
        return chunks

    def head(s: _Sub, now_ms: float) -> None:
        nonlocal inflight
        end = s.raw.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(s.raw[:end]).split(b"\r\n")
        status = int(lines[0].split()[1])
        if status != 200:
            fail(s, "status", status)
            return
        s.chunked = b"transfer-encoding: chunked" in b"\n".join(lines[1:]).lower()
        rest = bytes(s.raw[end + 4:])
        s.raw.clear()
        s.state = "body"
        inflight -= 1
        st["connected"] += 1
        st["handshake_ms"].append((time.monotonic() - s.t_start) * 1000)
        if rest:
            body(s, rest, now_ms)

    def body(s: _Sub, data: bytes, now_ms: float) -> None:
        nonlocal chunks_window
        if not s.chunked:
            text_in(s, data, now_ms)
            return
        chunks = dechunk(s, data, now_ms)
        if chunks < 0 or s.need < 0:  # the last chunk: the server ended the stream
            if s.text:
                text_in(s, b"", now_ms)
            st["ended"] += 1
            close(s)
            return
        if s.text:
            text_in(s, b"", now_ms)
        if t0 <= now_ms < t1:
            chunks_window += chunks

    try:
        while True:
            mono = time.monotonic()
            if wall() >= stop_at:
                break
            while pending and inflight < 64:
                start(pending.pop())
            if retry:
                due = [r for r in retry if r[0] <= mono]
                if due:
                    retry[:] = [r for r in retry if r[0] > mono]
                    pending.extend(s for _, s in due)
            if not reported and ((not pending and not retry and inflight == 0) or mono - begin > 60):
                conn.send(("connected", dict(st)))
                reported = True
            ready = ep.poll(0.05)
            # receipt time: when epoll reported the sockets readable (the bytes were in the
            # kernel by then); one clock read per batch, not per socket
            now_ms = wall() * 1000.0
            in_window = t0 <= now_ms < t1
            for fd, _mask in ready:
                if fd == ctl:
                    msg = conn.recv()
                    if msg[0] == "window":
                        t0, t1, stop_at = msg[1], msg[2], msg[3]
                    else:
                        stop_at = 0.0
                    continue
                s = subs.get(fd)
                if s is None or s.sock is None:
                    continue
                sock = s.sock
                if s.state == "connecting":
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(s, errno.errorcode.get(err, str(err)))
                        continue
                    sock.send((f"GET {s.path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                               f"Cache-Control: no-cache\r\n{s.header}\r\n").encode())
                    s.state = "head"
                    ep.modify(fd, select.EPOLLIN)
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if s.state == "head":
                        fail(s, type(exc).__name__)
                    else:
                        st["ended"] += 1
                        close(s)
                    continue
                if not data:
                    if s.state == "head":
                        fail(s, "eof_before_head")
                    else:
                        st["ended"] += 1
                        close(s)
                    continue
                if s.state == "body":
                    if in_window:
                        bytes_window += len(data)
                        reads_window += 1
                    if not s.chunked and not s.text and data[-1] == 10:  # whole lines, unchunked
                        scan(data, len(data), now_ms)
                    else:
                        body(s, data, now_ms)
                else:
                    s.raw += data
                    head(s, now_ms)
    finally:
        for s in list(subs.values()):
            close(s)
        ep.close()
    st.update({"frames": frames, "frames_window": frames_window, "bytes_window": bytes_window,
               "chunks_window": chunks_window, "reads_window": reads_window})
    st["hist_pub"] = {i: c for i, c in enumerate(hist_pub) if c}
    st["hist_srv"] = {i: c for i, c in enumerate(hist_srv if two_stamps else hist_pub) if c}
    conn.send(("result", st))
    conn.close()


def _dechunk_slow(s: _Sub) -> int:
    """De-chunk s.raw into s.text (any split); returns the chunks started; s.need = -1 at the end."""
    raw, out = s.raw, s.text
    pos, n, chunks = 0, len(raw), 0
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
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                s.need = -1
                pos = n
                break
            s.need = size + 2
            chunks += 1
    del raw[:pos]
    return chunks



# == the load client: the publisher process ==========================================================

class RawHTTP:
    """One keep-alive HTTP/1.1 connection: write requests (pipelined or not), read N replies."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def exchange(self, data: bytes, replies: int) -> list[tuple[int, bytes]]:
        self.sock.sendall(data)
        out: list[tuple[int, bytes]] = []
        while len(out) < replies:
            got = take_reply(self.buf)
            if got is not None:
                out.append(got)
                continue
            data_in = self.sock.recv(262144)
            if not data_in:
                raise ConnectionError("server closed the publisher connection")
            self.buf += data_in
        return out

    def close(self) -> None:
        self.sock.close()


@dataclass(slots=True)
class _Key:
    topic: int
    gateway_prefix: str  # the flat quote up to `"price":`
    head: str  # the drop-like payload's fields before "prev"
    mid: str  # its fields between "direction" and "last_update"
    center: int
    cents: int
    last_ms: int = 0


def _market(topics: list[str], events_per_topic: int, seed: int) -> list[_Key]:
    """The gateway bench market (topics x events x books x 6 outcome keys), in round-robin
    order over the topics, with the peers' drop-like payload pieces per key."""
    raw = build_market(topics, list(BOOKS), events_per_topic, "", seed)
    per_topic = len(raw) // len(topics)
    labels = {"h2h": ("Moneyline", "h2h_"), "spreads": ("Spread", "spread_"), "totals": ("Total", "total_")}
    keys: list[_Key] = []
    for j in range(per_topic):
        for t in range(len(topics)):
            k = raw[t * per_topic + j]
            row = json.loads(k.prefix[: -len(',"price":')] + "}")
            label, side = labels[row["market_key"]]
            d = json.dumps
            head = (f'{{"type":"odds_drop","sport_key":{d(row["sport_key"])},"event_id":{d(row["event_id"])},'
                    f'"bookmaker":{d(row["bookmaker"])},"kind":"game","market_key":{d(row["market_key"])},'
                    f'"market":{d(label)},"side":{d(side + row["outcome"])},"outcome":{d(row["outcome"])},')
            mid = (f'"point":{d(row["point"])},"home_team":{d(row["home_team"])},"away_team":{d(row["away_team"])},'
                   f'"commence_time":{d(row["commence_time"])},')
            keys.append(_Key(t, k.prefix, head, mid, k.center, k.cents))
    return keys


def _move(k: _Key, rng: random.Random) -> tuple[int, int, int]:
    """Move key k by 1-9 cents (back towards its centre once 60 cents off it):
    (previous price, new price, delta in cents)."""
    off = k.cents - k.center
    sign = -1 if off > 60 else 1 if off < -60 else rng.choice((-1, 1))
    delta = sign * rng.randint(1, 9)
    prev = cents_to_price(k.cents)
    k.cents += delta
    return prev, cents_to_price(k.cents), delta


Move = tuple[_Key, int, int, int]  # (key, previous price, new price, delta cents)


def _request(kind: str, topics: list[str], batch: list[Move], ts: int, first_id: int,
             post: Callable[[str, bytes], bytes]) -> tuple[bytes, int]:
    """The bytes that publish `batch`, stamped `ts`, and how many replies they get:
    the gateway one POST of flat quotes, starlette one POST of a JSON list, nchan one POST
    per event (pipelined when the batch has several)."""
    if kind == "gateway":
        body = "[" + ",".join(f'{k.gateway_prefix}{new},"observed_at_ms":{ts}}}' for k, _, new, _ in batch) + "]"
        return post("/v1/ingest/odds", body.encode()), 1
    events = []
    for i, (k, prev, new, delta) in enumerate(batch):
        events.append(f'{k.head}"prev":{prev},"new":{new},"delta":{delta},"prior_price":{prev},'
                      f'"new_price":{new},"delta_cents":{abs(delta)},'
                      f'"direction":"{"toward_favorite" if delta < 0 else "toward_dog"}",{k.mid}'
                      f'"last_update":{ts},"timestamp":{ts},"elapsed_ms":{ts - k.last_ms},'
                      f'"id":{first_id + i}}}')
        k.last_ms = ts
    if kind == "starlette":
        body = "[" + ",".join(f'{{"topic":"{topics[m[0].topic]}","data":{e}}}'
                              for m, e in zip(batch, events, strict=True)) + "]"
        return post("/publish", body.encode()), 1
    return b"".join(post(f"/pub?id={topics[m[0].topic]}", e.encode()) for m, e in zip(batch, events, strict=True)), \
        len(batch)


def _lag_pcts(lag_ms: list[float]) -> dict[int, float]:
    lag_ms.sort()
    return {q: lag_ms[min(len(lag_ms) - 1, int(len(lag_ms) * q / 100))] if lag_ms else math.nan for q in (50, 99)}


def run_publisher(conn: Connection, kind: str, host: str, port: int, api_key: str, *, rate: float,
                  interval_s: float, topics: list[str], events_per_topic: int, seed: int,
                  max_batch: int = 5000, unbatched: bool = False, connections: int = 4) -> None:
    """The publisher process. -> ("ready", {}); <- ("go", t0_ms, t1_ms, stop_at_s); -> ("result", dict).
    Batched (the default): one request per `interval_s` tick on one connection. `unbatched`:
    one event per request, open loop over `connections` keep-alive connections."""
    keys = _market(topics, events_per_topic, seed)
    rng = random.Random(seed + 1)
    http = RawHTTP(host, port)
    auth = f"X-API-Key: {api_key}\r\n" if api_key else ""

    def post(path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    base_errors = 0
    if kind == "gateway":  # every key's first price: the detector's baseline (no drop frame)
        now = int(time.time() * 1000)
        rows = [k.gateway_prefix + f'{cents_to_price(k.cents)},"observed_at_ms":{now}}}' for k in keys]
        for i in range(0, len(rows), 2000):
            [(status, _)] = http.exchange(post("/v1/ingest/odds", ("[" + ",".join(rows[i:i + 2000]) + "]").encode()), 1)
            base_errors += status != 200
        for k in keys:
            k.last_ms = now
    conn.send(("ready", {"keys": len(keys), "errors": base_errors}))
    msg = conn.recv()
    t0, t1, stop_at = msg[1], msg[2], msg[3]
    if unbatched:
        http.close()
        res = _publish_unbatched(kind, host, port, post, keys, rng, topics, rate=rate, connections=connections,
                                 t0=t0, t1=t1, stop_at=stop_at)
    else:
        res = _publish_batched(kind, host, port, post, http, keys, rng, topics, rate=rate, interval_s=interval_s,
                               max_batch=max_batch, t0=t0, t1=t1, stop_at=stop_at)
    conn.send(("result", res))
    conn.close()


def _publish_batched(kind: str, host: str, port: int, post: Callable[[str, bytes], bytes], http: RawHTTP,
                     keys: list[_Key], rng: random.Random, topics: list[str], *, rate: float, interval_s: float,
                     max_batch: int, t0: float, t1: float, stop_at: float) -> dict[str, Any]:
    """One request per tick carrying the events due (nchan: the tick's POSTs pipelined)."""
    counts = [0] * len(topics)
    statuses: dict[int, int] = {}
    req_ms: list[float] = []
    requests = refused = 0
    all_sent = 0
    seq = 0
    nkeys = len(keys)
    lag_ms: list[float] = []  # how long each window event waited in the publisher: stamp - due time
    start = time.monotonic()
    start_wall_ms = time.time() * 1000
    tick = 0
    while time.time() < stop_at:
        tick += 1
        delay = start + tick * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:  # behind: skip the missed ticks and send what they were due now
            tick = int((time.monotonic() - start) / interval_s)
        n = min(int(rate * tick * interval_s) - all_sent, max_batch)
        if n <= 0:
            continue
        batch: list[Move] = []
        for _ in range(n):
            k = keys[seq % nkeys]
            seq += 1
            batch.append((k, *_move(k, rng)))
        ts = int(time.time() * 1000)  # the stamp, just before publishing
        payload, replies = _request(kind, topics, batch, ts, seq - n + 1, post)
        p0 = time.perf_counter()
        try:
            answers = http.exchange(payload, replies)
        except OSError as exc:
            statuses[-1] = statuses.get(-1, 0) + 1
            print(f"publisher: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(0.1)
            with contextlib.suppress(OSError):
                http.close()
            http = RawHTTP(host, port)
            continue
        dt = (time.perf_counter() - p0) * 1000
        all_sent += n
        ok = True
        for status, _reply in answers:
            statuses[status] = statuses.get(status, 0) + 1
            ok = ok and status in (200, 201, 202)
        not_taken = n  # rows of this request the server did not take (all, unless answered 2xx)
        if ok:
            not_taken = n - json.loads(answers[0][1]).get("accepted", n) if kind != "nchan" else 0
            ok = not_taken == 0
        if t0 <= ts < t1:
            per_event_ms = 1000.0 / rate
            first_due = start_wall_ms + (all_sent - n + 1) * per_event_ms  # all_sent already counts this batch
            lag_ms.extend(max(0.0, ts - (first_due + i * per_event_ms)) for i in range(n))
            requests += 1
            req_ms.append(dt)
            if ok:
                for k, *_ in batch:
                    counts[k.topic] += 1
            else:
                refused += not_taken
    http.close()
    return {"counts": counts, "statuses": statuses, "requests": requests, "req_ms": req_ms, "lag": _lag_pcts(lag_ms),
            "refused": refused, "all_sent": all_sent, "connections": 1}


@dataclass(slots=True)
class _PubConn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    sent_at: float = 0.0  # perf_counter when the request in flight was sent
    ts: int = 0  # its stamp
    topic: int = -1  # its event's topic; -1: idle


def _pub_connect(host: str, port: int) -> _PubConn:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return _PubConn(sock)


def _publish_unbatched(kind: str, host: str, port: int, post: Callable[[str, bytes], bytes], keys: list[_Key],
                       rng: random.Random, topics: list[str], *, rate: float, connections: int, t0: float,
                       t1: float, stop_at: float) -> dict[str, Any]:
    """One event per request, open loop (as bench/ingest_cost.py): event i is due at
    start + i/rate and goes out on the first idle one of `connections` persistent HTTP/1.1
    keep-alive connections, each with at most one request in flight (taken round robin, so
    every connection stays in use). It is stamped just before it is sent; its lag is the
    send time - its due time (the wait for an idle connection)."""
    sel = selectors.DefaultSelector()
    conns = [_pub_connect(host, port) for _ in range(max(1, connections))]
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    idle = deque(conns)
    pending: deque[float] = deque()  # due times (perf_counter) of events waiting for a connection
    counts = [0] * len(topics)
    statuses: dict[int, int] = {}
    req_ms: list[float] = []
    lag_ms: list[float] = []
    requests = refused = all_sent = seq = 0
    nkeys = len(keys)
    period = 1.0 / rate
    start = time.perf_counter()
    due_i = 0
    wall = time.time

    def done(c: _PubConn, status: int, ok: bool) -> None:
        nonlocal requests, refused, all_sent
        statuses[status] = statuses.get(status, 0) + 1
        all_sent += 1
        if t0 <= c.ts < t1:
            requests += 1
            req_ms.append((time.perf_counter() - c.sent_at) * 1000)
            if ok:
                counts[c.topic] += 1
            else:
                refused += 1
        c.topic = -1

    sending = True
    drain_until = math.inf
    while True:
        now = time.perf_counter()
        if sending and wall() >= stop_at:
            sending = False
            pending.clear()
            drain_until = now + 10.0  # the replies of the requests in flight, bounded
        if not sending and (all(c.topic < 0 for c in conns) or now >= drain_until):
            break
        if sending:
            while start + due_i * period <= now:
                pending.append(start + due_i * period)
                due_i += 1
            while pending and idle:
                due = pending.popleft()
                c = idle.popleft()
                k = keys[seq % nkeys]
                seq += 1
                prev, new, delta = _move(k, rng)
                ts = int(wall() * 1000)  # the stamp, just before publishing
                payload, _ = _request(kind, topics, [(k, prev, new, delta)], ts, seq, post)
                c.sent_at, c.ts, c.topic = time.perf_counter(), ts, k.topic
                if t0 <= ts < t1:
                    lag_ms.append(max(0.0, (c.sent_at - due) * 1000))
                try:
                    c.sock.sendall(payload)
                except OSError as exc:
                    print(f"publisher: {exc!r}", file=sys.stderr, flush=True)
                    done(c, -1, False)
                    sel.unregister(c.sock)
                    c.sock.close()
                    conns[conns.index(c)] = c = _pub_connect(host, port)
                    sel.register(c.sock, selectors.EVENT_READ, c)
                    idle.append(c)
            timeout = 0.05 if pending or not idle else min(0.05, max(0.0, start + due_i * period - time.perf_counter()))
        else:
            timeout = 0.05
        for sk, _mask in sel.select(timeout):
            c = sk.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # the server closed it: the request in flight failed; a new connection
                print(f"publisher: the server closed a connection (in flight: {c.topic >= 0})", file=sys.stderr,
                      flush=True)
                if c.topic >= 0:
                    done(c, -1, False)
                sel.unregister(c.sock)
                c.sock.close()
                with contextlib.suppress(ValueError):
                    idle.remove(c)
                conns[conns.index(c)] = c = _pub_connect(host, port)
                sel.register(c.sock, selectors.EVENT_READ, c)
                idle.append(c)
                continue
            c.buf += data
            while c.topic >= 0 and (got := take_reply(c.buf)) is not None:
                status, body = got
                ok = status in (200, 201, 202)
                if ok and kind != "nchan":
                    try:
                        ok = json.loads(body).get("accepted", 1) == 1
                    except ValueError:
                        ok = False
                done(c, status, ok)
                idle.append(c)
    sel.close()
    for c in conns:
        with contextlib.suppress(OSError):
            c.sock.close()
    unanswered = sum(1 for c in conns if c.topic >= 0 and t0 <= c.ts < t1)
    return {"counts": counts, "statuses": statuses, "requests": requests, "req_ms": req_ms, "lag": _lag_pcts(lag_ms),
            "refused": refused + unanswered, "all_sent": all_sent, "connections": len(conns)}


# == the servers ===================================================================================

@dataclass
class Running:
    kind: str
    pid: int
    port: int
    stop: Callable[[], int | None]
    cleanup: Callable[[], None]
    sub_path: Callable[[str], str]
    sub_headers: list[str]  # per subscriber i: extra header lines
    pub_key: str
    stats: Callable[[], dict[str, Any]]
    log_tail: Callable[[], str]
    note: str = ""


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    import http.client

    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            if _get(port, path, 2)[0] == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server not ready on {path} after {timeout} s")


def _stop_proc(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return ""


def start_gateway(n_subs: int) -> Running:
    server = start_server()
    try:
        pub = server.create_key("sbs-ingest", "enterprise", ["ingest"])
        subs = [server.create_key(f"sbs-sub-{i}", "enterprise") for i in range(math.ceil(n_subs / SUBS_PER_KEY))]
    except BaseException:
        server.stop(5)
        server.cleanup()
        raise
    cuts0 = server.log_count("cutting off a slow")
    return Running(
        "gateway", server.pid, server.port, server.stop, server.cleanup,
        lambda topic: f"/v1/odds-drop/{topic}?threshold=1&heartbeat_s=30",
        [f"X-API-Key: {subs[i // SUBS_PER_KEY]}\r\n" for i in range(n_subs)], pub,
        lambda: {"evicted": server.log_count("cutting off a slow") - cuts0}, server.log_tail,
    )


def start_starlette(stack: str) -> Running:
    tmp = Path(tempfile.mkdtemp(prefix="sbs-starlette-"))
    port = free_port()
    log = tmp / "uvicorn.log"
    cmd = [sys.executable, "-m", "uvicorn", "bench.peers.starlette_hub:app", "--host", HOST, "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--app-dir", str(ROOT),
           *(["--loop", "asyncio", "--http", "h11"] if stack == "plain"
             else ["--loop", "uvloop", "--http", "httptools"]),
           "--backlog", "4096"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        _wait_http(port, "/stats", proc, log)
    except BaseException:
        _stop_proc(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def stats() -> dict[str, Any]:
        try:
            return dict(json.loads(_get(port, "/stats")[1]))
        except (OSError, ValueError) as exc:
            return {"error": repr(exc)}

    return Running("starlette", proc.pid, port, lambda: _stop_proc(proc),
                   lambda: shutil.rmtree(tmp, ignore_errors=True), lambda topic: f"/sse/{topic}",
                   [""], "", stats, lambda: _tail(log))


def start_nchan() -> Running:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = Path(tempfile.mkdtemp(prefix="sbs-nchan-"))
    tmp.chmod(0o755)  # the worker runs as nobody
    port = free_port()
    conf = tmp / "nchan.conf"
    conf.write_text(NCHAN_CONF.read_text().replace("__PREFIX__", str(tmp)).replace("__PORT__", str(port)))
    log = tmp / "error.log"
    with open(tmp / "stdout.log", "wb") as fh:
        proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        _wait_http(port, "/status", proc, log)
    except BaseException:
        _stop_proc(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def stats() -> dict[str, Any]:
        try:
            text = _get(port, "/status")[1].decode()
        except OSError as exc:
            return {"error": repr(exc)}
        out: dict[str, Any] = {}
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k in ("total published messages", "subscribers", "shared memory used"):
                out[k] = v.strip()
        return out

    return Running("nchan", proc.pid, port, lambda: _stop_proc(proc, signal.SIGQUIT),
                   lambda: shutil.rmtree(tmp, ignore_errors=True), lambda topic: f"/sub/{topic}",
                   [""], "", stats, lambda: _tail(log))


# == one step ======================================================================================

def _recv(conn: Connection, what: str, timeout: float, proc: mp.process.BaseProcess | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not conn.poll(0.2):
        if proc is not None and not proc.is_alive():
            raise RuntimeError(f"{proc.name} exited ({proc.exitcode}) before sending {what!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what!r} message within {timeout} s")
    msg = conn.recv()
    if msg[0] != what:
        raise RuntimeError(f"expected {what!r}, got {msg[0]!r}")
    return msg[1]


def _pcts(hist: dict[int, int], qs: tuple[float, ...] = (50, 90, 99, 100)) -> dict[float, float]:
    total = sum(hist.values())
    out = {q: math.nan for q in qs}
    if not total:
        return out
    items = sorted(hist.items())
    for q in qs:
        want = max(1, math.ceil(total * q / 100))
        seen = 0
        for b, c in items:
            seen += c
            if seen >= want:
                out[q] = b / BIN_PER_MS
                break
    return out


def _per_cpu() -> dict[int, tuple[int, int]]:
    """cpu index -> (busy jiffies, total jiffies) from /proc/stat (idle = idle + iowait; steal excluded)."""
    out: dict[int, tuple[int, int]] = {}
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]
                total = sum(v) - v[7]
                out[int(name[3:])] = (total - v[3] - v[4], total)
    return out


def _cpu_busy(a: dict[int, tuple[int, int]], b: dict[int, tuple[int, int]], cpus: set[int]) -> float:
    busy = sum(b[c][0] - a[c][0] for c in cpus if c in a and c in b)
    total = sum(b[c][1] - a[c][1] for c in cpus if c in a and c in b)
    return 100.0 * busy / total if total else math.nan


def _user_sys(pid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            f = fh.read().rsplit(b")", 1)[1].split()
        return int(f[11]), int(f[12])
    except (OSError, IndexError):
        return 0, 0


def _sys_share(pairs: list[tuple[tuple[int, int], tuple[int, int]]]) -> float:
    user = sum(b[0] - a[0] for a, b in pairs)
    system = sum(b[1] - a[1] for a, b in pairs)
    return system / (user + system) if user + system else math.nan


def _merge_hist(hists: list[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, v in h.items():
            out[k] = out.get(k, 0) + v
    return out


def run_step(args: argparse.Namespace, kind: str, target: float, nofile: int, profile: bool = False) -> dict[str, Any]:
    """One server, one deliveries/s target: fresh server, fresh subscribers; returns the figures."""
    topics = list(SPORTS[: args.topics])
    n = args.subscribers
    rate = target * len(topics) / n  # events/s in total
    t_begin = time.monotonic()
    all_cpus = os.sched_getaffinity(0)
    pin = args.pin and len(all_cpus) >= 2
    if pin:  # the server (and all it spawns) on the first CPU, the load client on the others
        os.sched_setaffinity(0, {min(all_cpus)})
    try:
        if kind == "gateway":
            srv = start_gateway(n)
        elif kind == "starlette":
            srv = start_starlette(args.starlette_stack)
        else:
            srv = start_nchan()
    finally:
        if pin:
            os.sched_setaffinity(0, all_cpus - {min(all_cpus)})
    ctx = mp.get_context("fork")
    procs: list[mp.process.BaseProcess] = []
    res: dict[str, Any] = {"server": kind, "target": target, "events_s": rate, "pinned": pin,
                           "subscribers": n, "topics": len(topics), "unbatched": args.unbatched}
    try:
        pub_parent, pub_child = ctx.Pipe()
        pub = ctx.Process(target=run_publisher, name="publisher",
                          args=(pub_child, kind, HOST, srv.port, srv.pub_key),
                          kwargs={"rate": rate, "interval_s": 0.02, "topics": topics,
                                  "events_per_topic": args.events_per_topic, "seed": args.seed,
                                  "unbatched": args.unbatched, "connections": args.publishers})
        pub.start()
        procs.append(pub)
        ready = _recv(pub_parent, "ready", 60, pub)
        rss0 = rss_kib(srv.pid)
        subs_per_topic = [0] * len(topics)
        targets = []
        for i in range(n):
            subs_per_topic[i % len(topics)] += 1
            targets.append((srv.sub_path(topics[i % len(topics)]), srv.sub_headers[i % len(srv.sub_headers)]))
        clients: list[tuple[mp.process.BaseProcess, Connection]] = []
        for c in range(args.clients):
            share = targets[c::args.clients]
            parent, child = ctx.Pipe()
            client = ctx.Process(target=run_subscribers, name=f"client-{c}",
                                 args=(child, HOST, srv.port, share, nofile, kind == "gateway"))
            client.start()
            procs.append(client)
            clients.append((client, parent))
        t = time.monotonic()
        conn_stats = [_recv(parent, "connected", 90, p) for p, parent in clients]
        res["connect_s"] = time.monotonic() - t
        res["connected"] = sum(s["connected"] for s in conn_stats)
        time.sleep(1.0)
        rss1 = rss_kib(srv.pid)
        now = time.time()
        t0 = now + 0.2 + args.warmup
        t1 = t0 + args.duration
        t0_ms, t1_ms = int(t0 * 1000), int(t1 * 1000)
        pub_parent.send(("go", t0_ms, t1_ms, t1 + 0.05))
        for _, parent in clients:
            parent.send(("window", t0_ms, t1_ms, t1 + args.drain))
        ut0 = {p.name: _user_sys(p.pid or 0) for p in procs}
        meter = CpuMeter({"server": srv.pid})
        cmeter = CpuMeter({p.name: p.pid or 0 for p in procs}, tree=False)
        time.sleep(max(0.0, t0 - time.time()))
        system = SystemCpu()
        system.start()
        percpu0 = _per_cpu()
        meter.start()
        cmeter.start()
        if profile:
            time.sleep(max(0.0, args.duration / 2 - 5))
            res["profile"] = profile_server(srv.pid, min(10.0, args.duration - 1), tag="side-by-side")
        time.sleep(max(0.0, t1 - time.time()))
        cpu = meter.stop()["server"]
        ccpu = cmeter.stop()
        ut1 = {p.name: _user_sys(p.pid or 0) for p in procs}
        machine = system.stop()
        percpu1 = _per_cpu()
        rss2 = rss_kib(srv.pid)
        pres = _recv(pub_parent, "result", 60, pub)
        results = [_recv(parent, "result", args.drain + 60, p) for p, parent in clients]
        res["server_stats"] = srv.stats()
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)
        os.sched_setaffinity(0, all_cpus)
        code = srv.stop()
        if code not in (0, None, -signal.SIGTERM):  # uvicorn re-raises the SIGTERM it handled
            res["exit"] = code
            print(f"warning: {kind} exited with {code}\n{srv.log_tail()}", file=sys.stderr)
        srv.cleanup()

    dur = args.duration
    expected = sum(c * s for c, s in zip(pres["counts"], subs_per_topic, strict=True))
    delivered = sum(r["frames_window"] for r in results)
    chunks = sum(r["chunks_window"] for r in results)
    hp = _pcts(_merge_hist([r["hist_pub"] for r in results]))
    hs = _pcts(_merge_hist([r["hist_srv"] for r in results]))
    rq = sorted(pres["req_ms"])
    client_cpu = [v for k, v in ccpu.items() if k.startswith("client")]
    ncpu = os.cpu_count() or 1
    ours = (cpu + sum(ccpu.values())) / 100
    evicted = int(res["server_stats"].get("evicted", 0) or 0)
    ended = sum(r["ended"] for r in results)
    res.update({
        "ready": ready,
        "events_achieved_s": sum(pres["counts"]) / dur,
        "deliveries_s": delivered / dur,
        "expected": expected,
        "delivered": delivered,
        "ratio": delivered / expected if expected else math.nan,
        "frames_per_write": delivered / chunks if chunks else math.nan,
        "bytes_per_delivery": (sum(r["bytes_window"] for r in results) / delivered) if delivered else math.nan,
        "p50": hp[50], "p90": hp[90], "p99": hp[99], "max": hp[100],
        "p50_srv": hs[50], "p99_srv": hs[99],
        "req_p50": rq[len(rq) // 2] if rq else math.nan, "req_p99": rq[int(len(rq) * 0.99)] if rq else math.nan,
        "req_mean": sum(rq) / len(rq) if rq else math.nan, "pub_connections": pres["connections"],
        "requests_s": pres["requests"] / dur,
        "pub_lag_p50": pres["lag"][50], "pub_lag_p99": pres["lag"][99],
        "pub_statuses": pres["statuses"], "refused": pres["refused"],
        "cpu": cpu,
        "us_per_delivery": cpu / 100 * dur * 1e6 / delivered if delivered else math.nan,
        "client_cpu": client_cpu,
        "client_sys_share": _sys_share([(ut0[k], ut1[k]) for k in ut0 if k.startswith("client")]),
        "pub_cpu": ccpu.get("publisher", math.nan),
        "rss0_mib": rss0 / 1024, "rss1_mib": rss1 / 1024, "rss2_mib": rss2 / 1024,
        "rss_per_sub_kib": (rss1 - rss0) / max(1, res["connected"]),
        "failed": sum(r["failed"] for r in results),
        "statuses": _merge_hist([r["statuses"] for r in results]),
        "ended": ended, "evicted": evicted,
        "busy": machine["busy"], "steal": machine["steal"],
        "other_cores": max(0.0, (machine["busy"] - machine["irq"]) * ncpu / 100 - ours),
        "wall_s": time.monotonic() - t_begin,
        "server_core_busy": _cpu_busy(percpu0, percpu1, {min(all_cpus)}) if pin else math.nan,
        "load_core_busy": _cpu_busy(percpu0, percpu1, all_cpus - {min(all_cpus)}) if pin else math.nan,
    })
    # the load client saturated its own core(s) (its processes, not other sessions' load)
    res["client_bound"] = pin and sum(ccpu.values()) >= 90.0 * max(1, len(all_cpus) - 1)
    reasons = []
    if res["connected"] < n:
        reasons.append(f"{n - res['connected']} not connected")
    if delivered != expected:
        reasons.append(f"delivered/expected {res['ratio']:.4f}")
    if ended or evicted:
        reasons.append(f"{ended} streams ended, {evicted} evicted")
    if pres["refused"] or any(s not in (200, 201, 202) for s in pres["statuses"]):
        reasons.append(f"publish errors {pres['statuses']} refused {pres['refused']}")
    if res["events_achieved_s"] < 0.97 * rate:
        reasons.append(f"publisher held only {res['events_achieved_s']:.0f} of {rate:.0f} events/s")
    if not res["p99"] < args.p99_limit:
        reasons.append(f"p99 {res['p99']:.1f} ms")
    res["ok"] = not reasons
    res["why"] = "; ".join(reasons) or "pass"
    if reasons and res["client_bound"]:
        res["why"] += f" (client-bound: the load client used {sum(ccpu.values()):.0f}% of its core)"
    return res


# == the sweep and the report ========================================================================

def _line(r: dict[str, Any]) -> str:
    cc = "/".join(f"{c:.0f}" for c in r["client_cpu"])
    return (f"{r['server']:9s} target {r['target']:>8,.0f}/s: {r['deliveries_s']:>9,.0f} deliveries/s, "
            f"delivered/expected {r['ratio']:.4f}, p50 {r['p50']:.1f} p99 {r['p99']:.1f} max {r['max']:.1f} ms, "
            f"server CPU {r['cpu']:.0f}% ({r['us_per_delivery']:.1f} us/delivery), "
            f"publisher {r['requests_s']:.0f} req/s on {r['pub_connections']} conn, round trip mean "
            f"{r['req_mean']:.2f} p99 {r['req_p99']:.1f} ms, lag p50/p99 {r['pub_lag_p50']:.1f}/"
            f"{r['pub_lag_p99']:.1f} ms, clients {cc}%, "
            f"(kernel {100 * r['client_sys_share']:.0f}%), publisher {r['pub_cpu']:.0f}%, "
            f"other load {r['other_cores']:.2f} cores, steal {r['steal']:.0f}%, "
            f"cores busy server/load {r['server_core_busy']:.0f}/{r['load_core_busy']:.0f}% "
            f"({r['wall_s']:.0f} s) -> {r['why']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--topics", type=int, default=10, help=f"1..{len(SPORTS)}")
    ap.add_argument("--clients", type=int, default=2, help="subscriber client processes")
    ap.add_argument("--ladder", default=",".join(str(x) for x in LADDER), help="deliveries/s targets, comma-separated")
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--duration", type=float, default=8.0, help="measuring window per step, s")
    ap.add_argument("--warmup", type=float, default=2.0, help="load before the window, s")
    ap.add_argument("--drain", type=float, default=2.0, help="subscribers keep reading this long after the window")
    ap.add_argument("--p99-limit", type=float, default=100.0, help="ms")
    ap.add_argument("--keep-going", type=int, default=0, help="steps a server may fail before it leaves the ladder")
    ap.add_argument("--refine", type=int, default=1,
                    help="bisection steps between each server's best pass and first failure")
    ap.add_argument("--budget", type=float, default=480.0, help="stop starting steps after this many s")
    ap.add_argument("--events-per-topic", type=int, default=4)
    ap.add_argument("--unbatched", action="store_true",
                    help="one event per request for every server, open loop over --publishers connections")
    ap.add_argument("--publishers", type=int, default=4,
                    help="with --unbatched: persistent keep-alive publisher connections, one request in flight each")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every ladder step this many times (the servers alternate within each round)")
    ap.add_argument("--starlette-stack", default="standard", choices=("standard", "plain"),
                    help="uvicorn[standard] (uvloop + httptools, the default) or plain (asyncio + h11)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy re-run of the gateway at its ceiling")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                    help="pin the server to the first CPU and the load client to the others (default: on)")
    ap.add_argument("--step-quiet-wait", type=float, default=20.0,
                    help="before each step, wait at most this long for the machine to be quiet, s")
    ap.add_argument("--retry-above", type=float, default=0.25,
                    help="run a failed step again if other sessions used more than this many cores during it")
    ap.add_argument("--json", type=Path, help="also write every step's figures here")
    add_quiet_args(ap)
    args = ap.parse_args(argv)
    args.topics = max(1, min(args.topics, len(SPORTS)))
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    ladder = [float(x) for x in args.ladder.split(",") if x.strip()]
    if "nchan" in servers and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        print("nginx not found (apt-get install nginx libnginx-mod-nchan): skipping nchan", file=sys.stderr)
        servers.remove("nchan")

    busy = wait_quiet(args)
    info = machine_info()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()) + f" | busy before start: {busy:.0f}%", flush=True)
    print(f"{args.subscribers} subscribers on {args.topics} topics, {args.clients} client processes; "
          f"window {args.duration:g} s after {args.warmup:g} s warm-up; pass: nothing lost and p99 < "
          f"{args.p99_limit:g} ms", flush=True)
    if args.unbatched:
        print(f"unbatched: one event per request for every server, open loop over {args.publishers} keep-alive "
              f"publisher connections (at most one request in flight each)", flush=True)
    else:
        print("batched: one request per 20 ms tick (nchan: the tick's one-event POSTs pipelined)", flush=True)
    nofile = raise_nofile(max(4096, args.subscribers * 2 + 1024))
    begin = time.monotonic()
    fails = dict.fromkeys(servers, 0)
    steps: list[dict[str, Any]] = []
    for target in ladder:
        for rep in range(max(1, args.repeat)):
            for kind in servers:
                if fails[kind] > args.keep_going:
                    continue
                spent = time.monotonic() - begin
                if spent > args.budget:
                    print(f"time budget ({args.budget:g} s) spent: no more steps", flush=True)
                    break
                r = _step(args, kind, target, nofile)
                if r is None:
                    fails[kind] += 1
                    continue
                r["rep"] = rep + 1
                steps.append(r)
                if not r["ok"]:
                    fails[kind] += 1
        if all(f > args.keep_going for f in fails.values()) or time.monotonic() - begin > args.budget:
            break
    # refine: bisect between each server's best passing step and its first failing one
    for _ in range(args.refine):
        for kind in servers:
            passed = [r["target"] for r in steps if r["server"] == kind and r["ok"]]
            failed = [r["target"] for r in steps if r["server"] == kind and not r["ok"]]
            if not passed or not failed or time.monotonic() - begin > args.budget:
                continue
            lo = max(passed)
            hi = min((f for f in failed if f > lo), default=0)
            mid = round((lo + hi) / 2 / 500) * 500
            if not hi or mid <= lo or mid >= hi:
                continue
            r = _step(args, kind, mid, nofile)
            if r is not None:
                r["rep"] = 1
                steps.append(r)
    steps.sort(key=lambda r: (servers.index(r["server"]), r["target"], r["rep"]))

    _report(args, servers, steps)
    if args.json:
        args.json.write_text(json.dumps(steps, indent=1, default=str))
    best = _ceilings(servers, steps)
    if "gateway" in servers and not args.no_profile:
        g = best.get("gateway")
        target = g["target"] if g else ladder[0]
        if not Path(PROFILER).exists():
            print(f"\n(no profile: {PROFILER} missing; pip install --target /tmp/pyspy py-spy)")
        else:
            print(f"\nprofiling the gateway at its ceiling ({target:,.0f} deliveries/s target; figures not used)",
                  flush=True)
            pargs = argparse.Namespace(**{**vars(args), "duration": 12.0})
            r = run_step(pargs, "gateway", target, nofile, profile=True)
            print(_line(r))
            print(r.get("profile", ""))
    print(f"\ntotal {time.monotonic() - begin:.0f} s")
    return 0


def _step(args: argparse.Namespace, kind: str, target: float, nofile: int) -> dict[str, Any] | None:
    """One step after waiting (bounded) for a quiet machine; a failed step that ran beside more
    than `--retry-above` cores of other sessions' load is run once more. None: it broke."""
    r: dict[str, Any] = {}
    attempt = 0
    for attempt in (1, 2):
        if args.step_quiet_wait > 0:
            wait_quiet(argparse.Namespace(quiet_below=args.quiet_below,
                                          quiet_wait=args.step_quiet_wait * attempt))
        try:
            r = run_step(args, kind, target, nofile)
        except Exception as exc:  # a server that does not start, a client that times out
            print(f"{kind} target {target:,.0f}/s: step failed: {exc!r}", file=sys.stderr, flush=True)
            return None
        print(_line(r), flush=True)
        if r["ok"] or r["other_cores"] <= args.retry_above or attempt == 2:
            break
        print(f"  ({r['other_cores']:.2f} cores of other load during that step: running it again)", flush=True)
    r["attempts"] = attempt
    return r


def _ceilings(servers: list[str], steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for r in steps:
        if r["ok"] and (r["server"] not in best or r["deliveries_s"] > best[r["server"]]["deliveries_s"]):
            best[r["server"]] = r
    return best


def _report(args: argparse.Namespace, servers: list[str], steps: list[dict[str, Any]]) -> None:
    rows = []
    for r in steps:
        rows.append([r["server"], r["target"], r["deliveries_s"], f"{r['ratio']:.4f}", r["p50"], r["p99"], r["max"],
                     r["pub_lag_p99"], r["cpu"], r["us_per_delivery"],
                     "/".join(f"{c:.0f}" for c in r["client_cpu"]), r["pub_cpu"],
                     r["rss_per_sub_kib"], r["frames_per_write"], r["bytes_per_delivery"],
                     f"{r['ended']}/{r['evicted']}", f"{r['server_core_busy']:.0f}/{r['load_core_busy']:.0f}",
                     f"{r['other_cores']:.2f}", "pass" if r["ok"] else "FAIL (client-bound)" if r["client_bound"]
                     else "FAIL"])
    print_table("side by side: every step", rows, headers=[
        "server", "target/s", "deliv/s", "deliv/exp", "p50 ms", "p99 ms", "max ms", "pub lag p99", "srv CPU%",
        "us/deliv",
        "client CPU%", "pub CPU%", "KiB/sub", "frames/write", "B/deliv", "ended/evicted", "core busy srv/load%",
        "other cores", ""])
    gw = [r for r in steps if r["server"] == "gateway"]
    if gw:
        print_table("gateway: latency from the server's detection stamp (`timestamp`) and ingest POSTs", [
            [r["target"], r["p50_srv"], r["p99_srv"], r["requests_s"], r["req_mean"], r["req_p50"], r["req_p99"]]
            for r in gw],
            headers=["target/s", "p50 ms", "p99 ms", "POST/s", "POST mean ms", "POST p50 ms", "POST p99 ms"])
    print_table("per server and step: the publisher's side", [
        [r["server"], r["target"], r.get("rep", 1), r["subscribers"], r["events_s"], r["deliveries_s"],
         r["us_per_delivery"], r["p50"], r["p99"], _lost(r), r["requests_s"], r["pub_connections"], r["req_mean"],
         r["req_p99"], r["pub_lag_p50"], r["pub_lag_p99"], f"{r['other_cores']:.2f}"] for r in steps],
        headers=["server", "target/s", "run", "subs", "events/s", "deliv/s", "us/deliv", "p50 ms", "p99 ms", "lost",
                 "req/s", "conns", "RTT mean ms", "RTT p99 ms", "lag p50 ms", "lag p99 ms", "other cores"])
    best = _ceilings(servers, steps)
    rows2 = []
    for s in servers:
        b = best.get(s)
        failed = [x for x in steps if x["server"] == s and not x["ok"]]
        nxt = f"{failed[0]['target']:,.0f}/s: {failed[0]['why']}" if failed else "-"
        if b:
            rows2.append([s, b["deliveries_s"], b["p50"], b["p99"], b["cpu"], b["us_per_delivery"],
                          b["rss_per_sub_kib"], nxt])
        else:
            rows2.append([s, "none passed", "-", "-", "-", "-", "-", nxt])
    print_table(f"ceilings: most deliveries/s with nothing lost and p99 < {args.p99_limit:g} ms", rows2,
                headers=["server", "deliveries/s", "p50 ms", "p99 ms", "CPU %", "us/delivery", "KiB/sub",
                         "first failing step"])
    g = best.get("gateway")
    lines = []
    for peer, factor in (("starlette", 10.0), ("nchan", 1.0)):
        p = best.get(peer)
        if not (g and p):
            continue
        ratio = g["deliveries_s"] / p["deliveries_s"]
        # the strict reading: the gateway's best passing step whose p99 is <= the peer's at its ceiling
        same = [r for r in gw if r["ok"] and r["p99"] <= p["p99"]]
        strict = max((r["deliveries_s"] for r in same), default=0.0) / p["deliveries_s"]
        verdict = "MET" if strict >= factor else "NOT MET"
        lines.append(f"gateway / {peer}: {ratio:.2f}x deliveries/s at the two ceilings (p99 {g['p99']:.1f} vs "
                     f"{p['p99']:.1f} ms); with the gateway's p99 <= {peer}'s {p['p99']:.1f} ms: {strict:.2f}x. "
                     f"Goal >= {factor:g}x at equal or lower p99: {verdict}")
    if lines and not args.unbatched:  # issue 8's goals are for the batched workload
        print("\n== the issue's ratios ==")
        for line in lines:
            print("  " + line)
    if args.unbatched:
        _verdicts(args, steps)


def _lost(r: dict[str, Any]) -> str:
    """'none' when every event stamped in the window reached every subscriber of its topic
    exactly once, no stream ended or was evicted and every publish was accepted."""
    if (r["delivered"] == r["expected"] and not r["ended"] and not r["evicted"] and not r["refused"]
            and r["connected"] == r["subscribers"]):
        return "none"
    return (f"{r['expected'] - r['delivered']:+,}/{r['ended']}e/{r['evicted']}x/{r['refused']}r"
            f"/{r['subscribers'] - r['connected']}nc")


# issue 19's measurements with one event per request ("the gateway on its drop stream, nchan with
# one event per request"), keyed by (subscribers, events/s, each to every subscriber)
ISSUE19_BEFORE = {
    (200, 200): "gateway 17-22 us/delivery, p50 3.4-26 ms, p99 up to 257 ms; nchan 7.5-10.7 us, p50 1.3-3.5 ms",
    (200, 20): "gateway p50 7.3 p99 13.9 ms; nchan p50 3.9 p99 8.9 ms",
    (1000, 50): "gateway 16 us/delivery, p50 19 p99 55 ms; nchan 12 us, p50 11 p99 47 ms",
}


def _verdicts(args: argparse.Namespace, steps: list[dict[str, Any]]) -> None:
    """Issue 19's targets, per run, the gateway against nchan at the same step:
    200 x 200/s: nothing lost, CPU per delivery <= nchan's, p50 <= nchan's + 1 ms;
    1000 x 50/s: CPU per delivery <= nchan's and p99 < 50 ms."""
    pairs = []
    for g in steps:
        if g["server"] != "gateway":
            continue
        for c in steps:
            if c["server"] == "nchan" and c["target"] == g["target"] and c.get("rep") == g.get("rep"):
                pairs.append((g, c))
    if not pairs:
        return
    print("\n== issue 19: the gateway against nchan, one event per request ==")
    for g, c in pairs:
        key = (g["subscribers"], round(g["events_s"])) if g["topics"] == 1 else None
        head = (f"{g['subscribers']} subscribers x {g['events_s']:g} events/s on {g['topics']} topic(s) "
                f"({g['target']:,.0f} deliveries/s), run {g.get('rep', 1)}: gateway {g['us_per_delivery']:.1f} "
                f"vs nchan {c['us_per_delivery']:.1f} us/delivery, p50 {g['p50']:.1f} vs {c['p50']:.1f}, p99 "
                f"{g['p99']:.1f} vs {c['p99']:.1f} ms, lost {_lost(g)} vs {_lost(c)}")
        print("  " + head)
        checks: list[tuple[str, bool]] = []
        if key == (200, 200):
            checks = [("nothing lost", _lost(g) == "none"),
                      (f"CPU per delivery {g['us_per_delivery']:.1f} <= nchan's {c['us_per_delivery']:.1f} us",
                       g["us_per_delivery"] <= c["us_per_delivery"]),
                      (f"p50 {g['p50']:.1f} <= nchan's {c['p50']:.1f} + 1 ms", g["p50"] <= c["p50"] + 1.0)]
        elif key == (1000, 50):
            checks = [(f"CPU per delivery {g['us_per_delivery']:.1f} <= nchan's {c['us_per_delivery']:.1f} us",
                       g["us_per_delivery"] <= c["us_per_delivery"]),
                      (f"p99 {g['p99']:.1f} < 50 ms", g["p99"] < 50.0)]
        for what, ok in checks:
            print(f"    target: {what}: {'MET' if ok else 'NOT MET'}")
        if checks:
            print(f"    => {'MET' if all(ok for _, ok in checks) else 'NOT MET'} "
                  f"(other load {g['other_cores']:.2f} / {c['other_cores']:.2f} cores)")
        elif key not in ISSUE19_BEFORE:
            print("    (no issue 19 target at this step)")
        else:
            print("    (no issue 19 target at this step: figures only)")
        if key in ISSUE19_BEFORE:
            print(f"    issue 19's before-figures: {ISSUE19_BEFORE[key]}")


if __name__ == "__main__":
    raise SystemExit(main())

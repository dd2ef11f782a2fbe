"""The load generator: flat quotes POSTed to /v1/ingest/odds over one keep-alive connection.

A synthetic market of (sport, event, book, market, outcome) keys, each with its price on
the continuous cents line (CONTRACT.md 5: -100 and +100 are one point). Every key's first
price is sent once as a baseline; after that each quote moves its key by a random number of
cents: 1-9 most of the time, 10-30 with probability `big_fraction` (those cross a 10-cent
threshold). Points never change (a new point would be a new key, not a drop).

Runs in its own process. Protocol with the parent over a multiprocessing Pipe:
  child -> ("ready", baseline_stats)          baselines committed
  parent -> ("go", t0_ms, t1_ms, stop_at_s)   send at `rate`; count what is sent in [t0, t1)
  child -> ("result", dict)
"""

from __future__ import annotations

import array
import contextlib
import http.client
import json
import random
import re
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

GAME_KEYS = (("h2h", "home", None, 0), ("h2h", "away", None, 0), ("spreads", "home", -3.5, -10),
             ("spreads", "away", 3.5, -10), ("totals", "over", 45.5, -10), ("totals", "under", 45.5, -10))


@dataclass(slots=True)
class Key:
    prefix: str  # the flat quote's JSON up to and including `"price":`
    center: int  # cents the price wanders around
    cents: int


def cents_to_price(c: int) -> int:
    return c - 100 if c < 0 else c + 100


def build_market(sports: list[str], books: list[str], events_per_sport: int, tag: str, seed: int,
                 commence_offset_s: float = 3 * 3600) -> list[Key]:
    """`commence_offset_s`: the events start this long after now (negative: already in play,
    e.g. -1800 for the in-play streams such as /ws/live, which carry events up to 4 h old)."""
    rng = random.Random(seed)
    commence = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + commence_offset_s))
    keys: list[Key] = []
    for sport in sports:
        for e in range(events_per_sport):
            event = f"bench{tag}_{sport}_{e}"
            home, away = f"{sport} Home {tag}{e}", f"{sport} Away {tag}{e}"
            fav = rng.randint(20, 150)  # home favourite by this many cents
            for book in books:
                for market, outcome, point, center in GAME_KEYS:
                    if market == "h2h":
                        center = -fav if outcome == "home" else fav
                    row = {"sport_key": sport, "event_id": event, "home_team": home, "away_team": away,
                           "commence_time": commence, "bookmaker": book, "market_key": market,
                           "outcome": outcome, "point": point, "player": None, "odds_format": "american"}
                    text = json.dumps(row, separators=(",", ":"))
                    start = center + rng.randint(-15, 15)
                    keys.append(Key(prefix=text[:-1] + ',"price":', center=center, cents=start))
    return keys


class Mover:
    def __init__(self, keys: list[Key], big_fraction: float, threshold: int, seed: int) -> None:
        self.keys = keys
        self.rng = random.Random(seed)
        self.big = big_fraction
        self.threshold = threshold

    def baseline_bodies(self, per_request: int) -> list[bytes]:
        rows = [k.prefix + str(cents_to_price(k.cents)) + "}" for k in self.keys]
        return [("[" + ",".join(rows[i:i + per_request]) + "]").encode() for i in range(0, len(rows), per_request)]

    def batch(self, n: int) -> tuple[bytes, int]:
        """A body of `n` price changes; returns (body, how many cross the threshold)."""
        rng, keys, big = self.rng, self.keys, self.big
        rows = []
        crossing = 0
        for k in rng.choices(keys, k=n):
            mag = rng.randint(10, 30) if rng.random() < big else rng.randint(1, 9)
            off = k.cents - k.center
            if off > 60:
                sign = -1
            elif off < -60:
                sign = 1
            else:
                sign = 1 if rng.random() < 0.5 else -1
            k.cents += sign * mag
            if mag >= self.threshold:
                crossing += 1
            rows.append(k.prefix + str(cents_to_price(k.cents)) + "}")
        return ("[" + ",".join(rows) + "]").encode(), crossing


class Poster:
    """POST over one keep-alive http.client connection; reconnects once on a dropped connection."""

    def __init__(self, host: str, port: int, key: str, timeout: float = 60.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def post(self, body: bytes, path: str = "/v1/ingest/odds") -> tuple[int, dict[str, Any]]:
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                resp = self.conn.getresponse()
                data = resp.read()
                try:
                    parsed = json.loads(data)
                except ValueError:
                    parsed = {"raw": data[:200].decode(errors="replace")}
                return resp.status, parsed
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def run_loadgen(conn: Connection, host: str, port: int, key: str, *, rate: float, interval_s: float,
                sports: list[str], books: list[str], events_per_sport: int, big_fraction: float,
                threshold: int, seed: int, tag: str = "", batch_rows: int = 0, max_batch: int = 5000,
                commence_offset_s: float = 3 * 3600) -> None:
    """Entry point of the load-generator process.

    `rate` > 0: every `interval_s` send the price changes due at `rate`/s (catching up, up to
    `max_batch` per request, if a POST took longer than the interval). `rate` == 0: closed
    loop, back-to-back requests of `batch_rows` changes each. `commence_offset_s`: see
    `build_market` (the default, 3 h ahead, keeps the events pre-match).
    """
    keys = build_market(sports, books, events_per_sport, tag, seed, commence_offset_s)
    mover = Mover(keys, big_fraction, threshold, seed + 1)
    poster = Poster(host, port, key)
    t = time.perf_counter()
    base_errors = 0
    for body in mover.baseline_bodies(2000):
        status, _ = poster.post(body)
        base_errors += status != 200
    conn.send(("ready", {"keys": len(keys), "baseline_s": time.perf_counter() - t, "errors": base_errors}))
    msg = conn.recv()
    if msg[0] != "go":
        poster.close()
        conn.send(("result", {}))
        return
    t0_ms, t1_ms, stop_at = msg[1], msg[2], msg[3]
    sent = crossing = requests = 0
    all_sent = 0
    statuses: dict[int, int] = {}
    rejected = 0
    post_ms = array.array("d")
    start = time.monotonic()
    tick = 0
    while time.time() < stop_at:
        if rate > 0:
            tick += 1
            delay = start + tick * interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # behind: skip the missed ticks, and send what they were due in this request
                tick = int((time.monotonic() - start) / interval_s)
            n = min(int(rate * tick * interval_s) - all_sent, max_batch)
            if n <= 0:
                continue
        else:
            n = batch_rows
        body, cross = mover.batch(n)
        send_ms = time.time() * 1000
        p0 = time.perf_counter()
        try:
            status, reply = poster.post(body)
        except OSError as exc:
            statuses[-1] = statuses.get(-1, 0) + 1
            print(f"loadgen: POST failed: {exc!r}", flush=True)
            time.sleep(0.1)
            continue
        dt = (time.perf_counter() - p0) * 1000
        all_sent += n
        statuses[status] = statuses.get(status, 0) + 1
        if t0_ms <= send_ms < t1_ms:
            requests += 1
            post_ms.append(dt)
            if status == 200:
                sent += int(reply.get("accepted", 0))
                crossing += cross
                rejected += int(reply.get("rejected_count", 0))
    with contextlib.suppress(OSError):
        poster.close()
    conn.send(("result", {"sent": sent, "crossing": crossing, "requests": requests, "statuses": statuses,
                          "rejected": rejected, "post_ms": post_ms.tobytes(), "all_sent": all_sent,
                          "keys": len(keys)}))
    conn.close()


_LEN = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_CHUNKED = re.compile(rb"(?i)\r\ntransfer-encoding:\s*chunked")


def take_reply(buf: bytearray) -> tuple[int, bytes] | None:
    """One whole HTTP/1.1 reply off the front of `buf` (Content-Length, chunked or bodiless):
    (status, body), or None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    status = int(head.split(b" ", 2)[1])
    m = _LEN.search(head)
    if m:
        size = int(m.group(1))
        if len(buf) < end + 4 + size:
            return None
        body = bytes(buf[end + 4:end + 4 + size])
        del buf[:end + 4 + size]
        return status, body
    if _CHUNKED.search(head):
        stop = buf.find(b"\r\n0\r\n\r\n", end)
        if stop < 0:
            return None
        body = dechunk(bytes(buf[end + 4:stop + 7]))
        del buf[:stop + 7]
        return status, body
    del buf[:end + 4]
    return status, b""


def dechunk(raw: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol], 16)
        if size == 0:
            return bytes(out)
        out += raw[eol + 2:eol + 2 + size]
        pos = eol + 4 + size


def drop_stream_head(sport: str, key: str, last: int | None) -> bytes:
    """An HTTP/1.0 request for a sport's drop stream (every drop, heartbeats each second),
    resuming after `last` when given: the body is the raw SSE stream until the server closes."""
    return (f"GET /v1/odds-drop/{sport}?threshold=1&heartbeat_s=1 HTTP/1.0\r\nHost: x\r\nX-API-Key: {key}\r\n"
            + (f"Last-Event-ID: {last}\r\n" if last else "") + "\r\n").encode()


@dataclass(slots=True)
class StreamIds:
    """What the churn and crash benches check of a drop stream read as it arrives: the ids of
    its frames, in order, and how many `reset` frames came."""

    ids: list[int]
    resets: int = 0
    _buf: bytes = b""
    _body: bool = False

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        if not self._body:
            if b"\r\n\r\n" not in self._buf:
                return
            self._buf = self._buf.split(b"\r\n\r\n", 1)[1]  # the response head
            self._body = True
        *events, self._buf = self._buf.split(b"\n\n")
        for ev in events:
            if ev.startswith(b"id: "):
                self.ids.append(int(ev[4:ev.index(b"\n")]))
            elif b'"reset"' in ev:
                self.resets += 1

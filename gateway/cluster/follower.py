"""The edge's side: a copy of the cluster's state kept by reading Redis, and the frames fanned
out to this edge's clients through the same hub and direct writers as one process.

Bootstrap: one MULTI reads the board, live state, catalog, names, keys and the head, so
they agree with each other. Then a blocking XREAD (in a worker thread) from the head, on
the log and on the key log at once, pipelined with a read of the epoch, floor and head:
entries are decoded in the thread, then, in Trio, applied to the board and published to
the hub. Whenever the epoch changed (Redis lost its data and the writer started a new one)
or the floor passed this edge's position (it fell behind the retention window), the edge
bootstraps again and, unless it missed nothing, cuts its clients, who resume and get
`reset`. A lost connection is retried with backoff; clients only wait.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..auth import ApiKey
from ..config import ClusterConfig, redacted_url
from ..core.board import Board
from ..core.catalog import SportInfo
from ..core.frames import DROP, ODDS, PBP, Frame
from ..core.freshness import Freshness
from ..core.logcodec import STREAM_OF, decode
from ..startup import StartupError
from . import link
from .records import entry_id, live_rows, live_state_of, load_board, row_quotes, seq_of, unpack_entry

if TYPE_CHECKING:
    from ..app import Gateway

logger = logging.getLogger("gateway.cluster")

BLOCK_MS = 2_000  # one XREAD waits this long at most (then reads the epoch again)
COUNT = 2_000  # entries per XREAD
RESET = "cluster_reset"  # the reason edges cut their clients with (they resume and get `reset`)
LOG_EVERY_S = 30.0
MAX_NAMES = 200_000  # names kept in memory (read from Redis again when needed)
Item = tuple[Frame, int, dict[str, Any]]  # a frame, its creation time (ms), its payload


class NameError_(LookupError):
    """A code of the compact log that Redis does not know (should not happen: the writer
    writes names with or before the entries that use them)."""


class KeyRecord:
    __slots__ = ("key", "revoked")

    def __init__(self, key: ApiKey, revoked: bool) -> None:
        self.key, self.revoked = key, revoked


def key_record(value: bytes) -> KeyRecord:
    key_id, name, tier, scopes, prefix, revoked = json.loads(value)
    return KeyRecord(ApiKey(int(key_id), name, tier, frozenset(s for s in scopes.split(",") if s), prefix),
                     bool(revoked))


class Follower:
    def __init__(self, gw: Gateway, cfg: ClusterConfig, edge_id: str) -> None:
        self.gw, self.cfg, self.edge_id = gw, cfg, edge_id
        self.r = link.client(cfg.redis_url)
        self.rx = link.client(cfg.redis_url, timeout_s=BLOCK_MS / 1000 + 10)  # the blocking reads' own
        self.epoch: bytes | None = None
        self.cursor = 0  # the last id applied and published here
        self.floor = 0
        self.head = 0  # Redis's head when last read
        self.key_cursor = b"0-0"
        self.names: dict[int, Any] = {}
        self.keys: dict[str, KeyRecord] = {}  # by key hash
        self.key_ids: dict[int, KeyRecord] = {}
        self.live: dict[str, tuple[Any, ...]] = {}  # match id -> live_state row
        self.final: set[str] = set()
        self.freshness = Freshness()
        self.writer_url = ""
        self.writer_ms = 0  # the writer's last state, its clock
        self.connected = False
        self.lost_at: float | None = None  # trio time Redis stopped answering this edge
        self.synced = False
        self.error: str | None = None
        self.received = 0  # entries read from Redis
        self.resets = 0  # times this edge cut its clients (a gap it could not fill)
        self.bootstraps = 0

    # -- names of the compact log ----------------------------------------------------------------
    def name(self, code: int) -> Any:
        """In a worker thread (decoding); a code not seen yet is read from Redis."""
        value = self.names.get(code)
        if value is None:
            raw = self.r.hget(link.NAMES, str(code))
            if raw is None:
                raise NameError_(f"name {code} of the stream log is not in Redis")
            if len(self.names) > MAX_NAMES:  # names of pruned rows linger: start again now and then
                self.names = {}
            value = self.names[code] = _name_value(raw)
        return value

    def frame(self, entry: bytes, fields: dict[bytes, bytes]) -> Item:
        """A stream entry as the frame live clients get, its creation time and its payload."""
        seq = seq_of(entry)
        topic, ms, body = unpack_entry(fields[b"f"])
        payload, text = decode(body, seq=seq, ms=ms, name=self.name)
        if payload is None:
            payload = json.loads(text)
        frame = Frame(seq=seq, stream=STREAM_OF[topic & 3], payload=payload, text=text, live=bool(body[0] & 1))
        return frame, ms, payload

    # -- bootstrap --------------------------------------------------------------------------------
    def read_all(self) -> dict[str, Any] | None:
        """Everything at one head, in one transaction (None: the writer has not set Redis up)."""
        with self.r.pipeline(transaction=True) as p:
            p.hgetall(link.META)
            for key in (link.QUOTES, link.EVENTS, link.LIVE, link.SPORTS, link.BOOKS, link.NAMES, link.KEYS):
                p.hgetall(key)
            p.smembers(link.MARKETS)
            p.xrevrange(link.KEYLOG, count=1)
            p.get(link.STATE)
            meta, quotes, events, live, sports, books, names, keys, markets, keylog, state = p.execute()
        if b"epoch" not in meta or b"head" not in meta:
            return None
        board = Board()
        load_board(board, quotes, events)
        return {"meta": meta, "board": board, "live": live_rows(live), "sports": sports, "books": books,
                "markets": markets, "names": {int(k): _name_value(v) for k, v in names.items()},
                "keys": {k.decode(): key_record(v) for k, v in keys.items()},
                "key_cursor": keylog[0][0] if keylog else b"0-0", "state": state}

    async def bootstrap(self, *, waiting: Callable[[str], None] | None = None) -> None:
        """Read everything (waiting for Redis and for the writer to set it up), then adopt it."""
        said = 0.0
        while True:
            try:
                got = await link.call(self.read_all)
                if got is not None:
                    break
                why = "waiting for the writer to set up Redis (start gateway serve --role writer)"
            except link.auth_errors() as exc:
                raise StartupError(f"Redis at {redacted_url(self.cfg.redis_url)} refused: {exc}: check "
                                   "[cluster] redis_url") from None
            except link.errors() as exc:
                why = f"waiting for Redis at {redacted_url(self.cfg.redis_url)} ({exc})"
            if time.monotonic() - said > LOG_EVERY_S:
                logger.warning("cluster edge %s: %s", self.edge_id, why)
                said = time.monotonic()
                if waiting is not None:
                    waiting(why)
            await trio.sleep(0.5)
        self._adopt(got)

    def _adopt(self, got: dict[str, Any]) -> None:
        """Take a bootstrap's state (no await: atomic for every reader)."""
        meta = got["meta"]
        gw, u = self.gw, self.gw.universe
        gw.board.replace_with(got["board"])
        self.live = got["live"]
        self.final = {m for m, r in self.live.items() if r[8] == "final"}
        for key, value in got["sports"].items():
            grp, title, desc, outrights, active = json.loads(value)
            k = key.decode()
            if k not in u.sports:
                u.sports[k] = SportInfo(k, grp, title, desc, bool(outrights))
            if active:
                u.active_sports.add(k)
        for key, value in got["books"].items():
            u.coverage.setdefault(key.decode(), json.loads(value)[1])
        u.markets.update(m.decode() for m in got["markets"])
        self.names = got["names"]
        self.keys = got["keys"]
        self.key_ids = {rec.key.id: rec for rec in self.keys.values()}
        self.key_cursor = got["key_cursor"]
        gw.key_cache.clear()
        self._state(got["state"])
        self.epoch = meta[b"epoch"]
        self.head = self.cursor = int(meta[b"head"])
        self.floor = int(meta.get(b"floor", 0))
        self.writer_url = meta.get(b"writer_url", b"").decode()
        secret = meta.get(b"session_secret")
        if secret and not gw.config.server.session_secret:
            gw.session_secret = bytes.fromhex(secret.decode())
        self.synced = self.connected = True
        self.error = None
        self.bootstraps += 1

    def _state(self, raw: bytes | None) -> None:
        if raw:
            state = json.loads(raw)
            self.freshness.replace(state.get("freshness", []))
            self.writer_ms = int(state.get("writer_ms", 0))

    # -- following --------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._state_forever)
            task_status.started()
            await self._follow_forever()

    def read(self) -> tuple[list[Item], list[tuple[bytes, bytes]], bytes | None, list[bytes | None]]:
        """One blocking XREAD (in a worker thread): (frames, key changes, last key-log id, [epoch,
        floor, head, writer_url]) - the meta read right after the entries, on the same connection."""
        with self.rx.pipeline(transaction=False) as p:
            p.xread({link.LOG: entry_id(self.cursor), link.KEYLOG: self.key_cursor}, count=COUNT, block=BLOCK_MS)
            p.hmget(link.META, "epoch", "floor", "head", "writer_url")
            got, meta = p.execute()
        frames: list[Item] = []
        keys: list[tuple[bytes, bytes]] = []
        key_cursor = None
        for stream, entries in got or ():
            if stream == link.LOG.encode():
                if meta[0] != self.epoch:
                    break  # a new epoch: these ids may not follow ours (see _follow_forever)
                for entry, fields in entries:
                    try:
                        frames.append(self.frame(entry, fields))
                    except NameError_ as exc:
                        logger.error("cluster edge: entry %s cannot be decoded (%s); skipped", entry, exc)
            else:
                for entry, fields in entries:
                    keys.append((fields[b"h"], fields[b"v"]))
                    key_cursor = entry
        return frames, keys, key_cursor, meta

    async def _follow_forever(self) -> None:
        pause = 0.05
        while True:
            try:
                frames, keys, key_cursor, meta = await link.call(self.read)
            except link.errors() as exc:
                if self.connected:
                    logger.warning("cluster edge %s: lost Redis (%s); retrying, clients wait", self.edge_id, exc)
                    self.lost_at = trio.current_time()
                self.connected, self.error = False, str(exc)
                await trio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            pause = 0.05
            if not self.connected:
                logger.warning("cluster edge %s: Redis answers again (at id %d)", self.edge_id, self.cursor)
                self.connected, self.error, self.lost_at = True, None, None
                await self.reload_keys()  # the key log may have been trimmed past us meanwhile
                continue
            epoch, floor, head = meta[0], int(meta[1] or 0), int(meta[2] or 0)
            if epoch != self.epoch or floor > self.cursor:
                await self._rebootstrap(epoch, floor, head)
                continue
            self.floor, self.head = floor, head
            if meta[3]:
                self.writer_url = meta[3].decode()
            if keys:
                self._apply_keys(keys)
                self.key_cursor = key_cursor or self.key_cursor
            if frames:
                self.apply(frames)

    def down_for(self) -> float:
        return 0.0 if self.lost_at is None else trio.current_time() - self.lost_at

    async def reload_keys(self) -> None:
        def read() -> tuple[dict[bytes, bytes], list[Any]]:
            with self.r.pipeline(transaction=True) as p:
                p.hgetall(link.KEYS)
                p.xrevrange(link.KEYLOG, count=1)
                keys, last = p.execute()
            return keys, last

        try:
            keys, last = await link.call(read)
        except link.errors():
            return  # the follow loop notices
        self.keys = {k.decode(): key_record(v) for k, v in keys.items()}
        self.key_ids = {rec.key.id: rec for rec in self.keys.values()}
        self.key_cursor = last[0][0] if last else b"0-0"
        self.gw.key_cache.clear()

    def apply(self, items: list[Item]) -> None:
        """Frames into the board, live state and catalog, then to this edge's clients."""
        board, u = self.gw.board, self.gw.universe
        frames = []
        for f, ms, p in items:
            if f.seq is None or f.seq <= self.cursor:
                continue  # already here (a writer that caught Redis up sends some again)
            frames.append(f)
            sport = f.sport_key
            if sport is not None and sport not in u.active_sports:
                u.activate_sport(sport)
            if f.stream == ODDS:
                row = p["data"][0]
                for q in row_quotes(row, board):
                    board.apply(q)
                u.add_book(row["bookmaker"])
                u.markets.update(p.get("markets") or ())
            elif f.stream == DROP:
                u.add_book(p["bookmaker"])
                u.markets.add(p["market_key"])
            elif f.stream == PBP and p.get("type") == "pbp_event":
                row = live_state_of(p, ms)
                self.live[row[0]] = row
                if row[8] == "final":
                    self.final.add(row[0])
        if frames:
            self.cursor = frames[-1].seq or self.cursor
            self.received += len(frames)
            self.gw.hub.publish(frames)

    def _apply_keys(self, changes: list[tuple[bytes, bytes]]) -> None:
        for h, v in changes:
            old = self.keys.pop(h.decode(), None)
            if old is not None:
                self.key_ids.pop(old.key.id, None)
            if v:
                rec = key_record(v)
                self.keys[h.decode()] = rec
                self.key_ids[rec.key.id] = rec
        self.gw.key_cache.clear()

    async def _rebootstrap(self, epoch: bytes | None, floor: int, head: int) -> None:
        before = self.cursor
        if epoch is None:  # Redis came back empty: wait for the writer to set it up again
            logger.warning("cluster edge %s: Redis lost its data; waiting for the writer", self.edge_id)
        await self.bootstrap()
        if self.floor <= before <= self.head:
            self.cursor = before  # nothing missed: (before, head] comes next, as frames
            logger.warning("cluster edge %s: new Redis epoch; nothing missed (at id %d)", self.edge_id, before)
            return
        self.resets += 1
        logger.warning("cluster edge %s: ids %d..%d are no longer in Redis (new epoch or past the retention "
                       "window): clients reconnect and get a reset", self.edge_id, before + 1, self.floor)
        self.gw.hub.close_all(RESET)

    def metrics(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gateway_cluster_redis_up", "1 while Redis answers this process", value=self.connected)
        yield CounterMetricFamily("gateway_cluster_entries_received", "Log entries this edge read from Redis",
                                  value=self.received)
        yield GaugeMetricFamily("gateway_cluster_lag_ids", "Ids Redis holds that this edge has not published yet",
                                value=max(0, self.head - self.cursor))
        yield CounterMetricFamily("gateway_cluster_resets", "Times this edge cut its clients (ids no longer in Redis)",
                                  value=self.resets)
        refused = getattr(self.gw.caps, "refused_by_others", 0)
        yield CounterMetricFamily("gateway_cluster_cap_refusals_other_edges",
                                  "Streams refused because of the key's streams on other edges", value=refused)

    async def _state_forever(self) -> None:
        while True:
            await trio.sleep(1.0)
            try:
                raw = await link.call(lambda: self.r.get(link.STATE))
            except link.errors():
                continue  # the follower reports it
            self._state(raw)


def _name_value(raw: bytes) -> Any:
    value = json.loads(raw)
    return tuple(value) if isinstance(value, list) else value

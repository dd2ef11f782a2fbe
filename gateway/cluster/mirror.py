"""The writer's side: everything an edge needs, put in Redis after each commit.

Off the commit path: the writer's batch hook only queues the batch (`on_batch`, no await);
a task sends queued batches in one Lua call per round (PUBLISH in link.py): each log row as
an entry `<seq>-0` with the bytes the store wrote, the names they brought, the board rows
the batch stored, and the new head, only if Redis is where the writer left it.

Redis is a copy; SQLite stays the truth. Whenever Redis is not where the writer left it
(down, restarted and lost its last second, emptied, or the queue overflowed) the writer
catches up from the store: the log rows after Redis's head with the bytes they were
stored with, then the whole board, then the new head; an empty Redis (or one ahead of the
database) gets a new epoch, the board, and nothing older than the store's last id (edges
then reset their clients; resumes from older ids get `reset`).

Beside it: the API keys (every 0.5 s, a change is also appended to the key log edges
read), the source freshness (every second), the retention floor (XTRIM MINID with the
store's pruning), and the writer's lock (one writer per cluster).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..config import ClusterConfig, redacted_url
from ..startup import StartupError
from ..store import WriteBatch, pruned_through
from . import link
from .records import entry_id
from .sections import Sections, Snapshot, batch_sections, key_rows, log_page, read_snapshot

if TYPE_CHECKING:
    from ..app import Gateway

logger = logging.getLogger("gateway.cluster")

QUEUE = 10_000  # batches waiting for Redis; past it the writer catches up from the store instead
ROUND_ROWS = 5_000  # log rows per publish call
PAGE = 2_000  # log rows per call while catching up
KEYS_INTERVAL_S = 0.5  # keys created or revoked reach the edges within this (plus their read)
STATE_INTERVAL_S = 1.0
TRIM_INTERVAL_S = 2.0
KEYLOG_MAX = 10_000


class Mirror:
    def __init__(self, gw: Gateway, cfg: ClusterConfig) -> None:
        self.gw, self.cfg = gw, cfg
        self.r = link.client(cfg.redis_url)
        self._send, self._receive = trio.open_memory_channel[WriteBatch](QUEUE)
        self.behind = True  # Redis must be brought up to date from the store before the next publish
        self.head: bytes | None = None  # Redis's head as this writer left it (the PUBLISH script's check)
        self.epoch: bytes | None = None
        self.floor = 0
        self.connected = False
        self.published = 0  # entries written to Redis
        self.catch_ups = 0
        self.error: str | None = None
        self.writer_url = ""
        self.lock_value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                      "id": secrets.token_hex(6), "started_ms": int(time.time() * 1000)})
        self._publish = self.r.register_script(link.PUBLISH)
        self._lock = self.r.register_script(link.LOCK)
        self._keys: dict[bytes, str] = {}  # key hash -> mirrored value (what the edges know)

    # -- the batch hook (in the writer task: no await) ----------------------------------------
    def on_batch(self, batch: WriteBatch) -> None:
        try:
            self._send.send_nowait(batch)
        except trio.WouldBlock:
            if not self.behind:
                logger.warning("cluster: Redis is %d commits behind; catching up from the store", QUEUE)
            self.behind = True

    # -- start-up (before the gateway listens) -------------------------------------------------
    def take_lock(self) -> None:
        """One writer per cluster: refuse to start beside another live writer (one line, exit 2)."""
        deadline = time.monotonic() + self.cfg.lease_s + 1
        while True:
            held = self._lock(keys=[link.WRITER], args=[self.lock_value, int(self.cfg.lease_s * 1000)])
            if held is None:
                return
            other = json.loads(held)
            if other.get("host") == socket.gethostname() and not _alive(int(other.get("pid", 0))):
                self.r.delete(link.WRITER)  # its process is gone (kill -9): the lock is stale
                continue
            if time.monotonic() > deadline:
                raise StartupError(f"another writer feeds Redis at {redacted_url(self.cfg.redis_url)} (pid "
                                   f"{other.get('pid')} on {other.get('host')}): a cluster has one writer; stop it, "
                                   "or start this one as --role edge")
            time.sleep(0.5)

    def release_lock(self) -> None:
        try:
            self.r.register_script(link.UNLOCK)(keys=[link.WRITER], args=[self.lock_value])
        except link.errors():
            pass

    # -- the tasks ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keys_forever)
            nursery.start_soon(self._state_forever)
            nursery.start_soon(self._lock_forever)
            nursery.start_soon(self._trim_forever)
            task_status.started()
            await self._publish_forever()

    async def _publish_forever(self) -> None:
        pause = 0.05
        while True:
            try:
                if self.behind:
                    await self.sync()
                batches = [await self._receive.receive()]
                rows = len(batches[0].stored)
                while rows < ROUND_ROWS:
                    try:
                        b = self._receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                    batches.append(b)
                    rows += len(b.stored)
                await self.publish(batches)
                pause = 0.05
            except link.errors() as exc:
                self._failed(exc)
                await trio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _failed(self, exc: BaseException) -> None:
        if self.connected or self.error is None:
            logger.warning("cluster: Redis is unreachable (%s); the writer goes on and catches Redis up "
                           "from the store when it answers", exc)
        self.connected = False
        self.error = str(exc)
        self.behind = True

    async def flush(self, timeout_s: float = 2.0) -> None:
        """At shutdown, after the writer's last commit: what is queued goes to Redis (else the
        next start catches Redis up from the store)."""
        with trio.move_on_after(timeout_s):
            batches = []
            while True:
                try:
                    batches.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                if self.behind:
                    await self.sync()
                if batches:
                    await self.publish(batches)
            except link.errors() as exc:
                self._failed(exc)

    async def publish(self, batches: list[WriteBatch]) -> None:
        head = int(self.head or 0)
        fresh = [b for b in batches if not b.stored or b.stored[-1][0] > head]  # a catch-up copied the others
        if not fresh:
            return
        s = batch_sections(fresh, self.gw.universe)
        if s.empty():
            return
        new_head = max([head, *(b.stored[-1][0] for b in fresh if b.stored)])
        if await self._call_publish(s, new_head):
            self.published += len(s.entries) // 2

    async def _call_publish(self, s: Sections, new_head: int) -> bool:
        """True: written. False: Redis was not where this writer left it (now `behind`)."""
        args = [self.head or b"", self.epoch or b"", new_head, *s.args()]
        keys = [link.LOG, link.META, link.NAMES, link.QUOTES, link.EVENTS, link.LIVE, link.SPORTS, link.BOOKS,
                link.MARKETS]
        result = await link.call(lambda: self._publish(keys=keys, args=args))
        if result == 1:
            self.head = str(new_head).encode()
            if not self.connected:
                logger.warning("cluster: Redis answers again")
            self.connected, self.error = True, None
            return True
        logger.warning("cluster: Redis is not where this writer left it (head %s, epoch %s; expected %s, %s): "
                       "catching up from the store", result[0] or None, result[1] or None, self.head, self.epoch)
        self.behind = True
        return False

    async def sync(self) -> None:
        """Bring Redis up to date from the store (see the module's docstring)."""
        head, epoch, floor = await link.call(lambda: self.r.hmget(link.META, "head", "epoch", "floor"))
        snap = await self.gw.store.read(read_snapshot)
        self.catch_ups += 1
        if epoch is None or head is None or int(head) > snap.last:
            if epoch is not None:
                logger.error("cluster: Redis holds ids past this writer's database (%s > %d): another writer, or a "
                             "restored database; starting a new epoch (edges reset their clients)", head, snap.last)
            await self._init(snap)
        else:
            self.head, self.epoch, self.floor = head, epoch, int(floor or 0)
            await self._catch_up(int(head), snap)
        self.behind = False
        self.connected, self.error = True, None

    async def _init(self, snap: Snapshot) -> None:
        """A new epoch: the board and catalog, no history (the floor is the store's last id)."""
        epoch = secrets.token_hex(8)
        s = Sections()
        s.add_names(snap.names)
        s.add_board(snap.quotes, snap.events, snap.live)
        s.add_catalog(snap.sports, snap.books, snap.markets)

        def init() -> None:
            with self.r.pipeline(transaction=True) as p:
                p.delete(*link.DATA_KEYS)
                for key, h in zip((link.NAMES, link.QUOTES, link.EVENTS, link.LIVE, link.SPORTS, link.BOOKS),
                                  s.hashes, strict=True):
                    for i in range(0, len(h), 1000):
                        p.hset(key, mapping=dict(zip(h[i:i + 1000:2], h[i + 1:i + 1000:2], strict=True)))
                if s.markets:
                    p.sadd(link.MARKETS, *s.markets)
                if snap.keys:
                    p.hset(link.KEYS, mapping=snap.keys)  # type: ignore[arg-type]
                p.hset(link.META, mapping={"epoch": epoch, "head": snap.last, "floor": snap.last,
                                           **self._meta()})
                p.execute()

        await link.call(init)
        self.head, self.epoch, self.floor = str(snap.last).encode(), epoch.encode(), snap.last
        self._keys = dict(snap.keys)  # edges bootstrap with them: the key log starts from here
        logger.warning("cluster: Redis initialised (epoch %s): board of %d prices, resumes from id %d on",
                       epoch, len(snap.quotes), snap.last)

    async def _catch_up(self, head: int, snap: Snapshot) -> None:
        """The log rows Redis lacks (with the bytes they were stored with), then the board."""
        copied = 0
        first = True
        after = head
        while after < snap.last:
            rows = await self.gw.store.read(partial(log_page, after=after, through=snap.last, limit=PAGE))
            if not rows:
                break
            s = Sections()
            if first:
                s.add_names(snap.names)  # the rows may use names whose batch Redis lost
                first = False
            s.add_rows(rows)
            if not await self._call_publish(s, rows[-1][0]):
                return
            after = rows[-1][0]
            copied += len(rows)
        s = Sections()
        if first:
            s.add_names(snap.names)
        s.add_board(snap.quotes, snap.events, snap.live)
        s.add_catalog(snap.sports, snap.books, snap.markets)
        if not await self._call_publish(s, snap.last):
            return
        await link.call(lambda: self.r.hset(link.META, mapping=self._meta()))
        # keys changed during what Redis lost would never be sent again: send what differs
        self._keys = {k: v.decode() for k, v in (await link.call(lambda: self.r.hgetall(link.KEYS))).items()}
        if copied or head < snap.last:
            logger.warning("cluster: Redis caught up from the store: %d log rows (ids %d..%d) and the board",
                           copied, head + 1, snap.last)

    async def announce(self, url: str) -> None:
        """Where the writer listens (or [cluster] writer_url): edges name it in 421 answers."""
        self.writer_url = self.cfg.writer_url or url
        try:
            await link.call(lambda: self.r.hset(link.META, "writer_url", self.writer_url))
        except link.errors() as exc:
            self._failed(exc)  # sync() writes it again

    def _meta(self) -> dict[str, str]:
        return {"writer_url": self.writer_url, "session_secret": self.gw.session_secret.hex(),
                "retention_hours": str(self.gw.config.database.retention_hours)}

    def metrics(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gateway_cluster_redis_up", "1 while Redis answers this process", value=self.connected)
        yield CounterMetricFamily("gateway_cluster_entries_published", "Log entries the writer put in Redis",
                                  value=self.published)
        yield CounterMetricFamily("gateway_cluster_catch_ups", "Times the writer brought Redis up to date from "
                                  "the store", value=self.catch_ups)
        yield GaugeMetricFamily("gateway_cluster_queue", "Commits waiting for Redis",
                                value=self._receive.statistics().current_buffer_used)

    # -- keys, state, retention ------------------------------------------------------------------
    async def _keys_forever(self) -> None:
        while True:
            try:
                await self.sync_keys()
            except link.errors() as exc:
                self._failed(exc)
            except Exception as exc:  # the store is failing: the writer reports it
                logger.warning("cluster: could not read the keys: %s", exc)
            await trio.sleep(KEYS_INTERVAL_S)

    async def sync_keys(self) -> None:
        if self.behind:
            return  # sync() sets what Redis holds first
        now = await self.gw.store.read(key_rows)
        changed = {h: v for h, v in now.items() if self._keys.get(h) != v}
        gone = [h for h in self._keys if h not in now]
        if not changed and not gone:
            return

        def send() -> None:
            with self.r.pipeline(transaction=True) as p:
                if changed:
                    p.hset(link.KEYS, mapping=changed)  # type: ignore[arg-type]
                if gone:
                    p.hdel(link.KEYS, *gone)
                for h, v in [*changed.items(), *((h, "") for h in gone)]:
                    p.xadd(link.KEYLOG, {"h": h, "v": v}, maxlen=KEYLOG_MAX, approximate=True)
                p.execute()

        await link.call(send)
        self._keys = now

    async def _lock_forever(self) -> None:
        """The writer's lock lives lease_s; renewed three times as often."""
        lease_ms = int(self.cfg.lease_s * 1000)
        while True:
            await trio.sleep(self.cfg.lease_s / 3)
            try:
                held = await link.call(lambda: self._lock(keys=[link.WRITER], args=[self.lock_value, lease_ms]))
            except link.errors() as exc:
                self._failed(exc)
                continue
            if held is not None:
                logger.error("cluster: another writer holds the cluster's lock (%s): two writers give "
                             "conflicting ids; stop one", held)

    async def _state_forever(self) -> None:
        last = ""
        while True:
            await trio.sleep(STATE_INTERVAL_S)
            state = json.dumps({"freshness": self.gw.writer.freshness.export(), "writer_ms": int(time.time() * 1000)})
            try:
                if state != last:
                    await link.call(partial(self.r.set, link.STATE, state))
                    last = state
            except link.errors() as exc:
                self._failed(exc)

    async def _trim_forever(self) -> None:
        while True:
            await trio.sleep(TRIM_INTERVAL_S)
            if self.behind or self.epoch is None:
                continue
            try:
                floor = await self.gw.store.read(pruned_through)
                if floor > self.floor:
                    await self.trim(floor)
            except link.errors() as exc:
                self._failed(exc)
            except Exception as exc:
                logger.warning("cluster: could not read the retention floor: %s", exc)

    async def trim(self, floor: int) -> None:
        """The resume window follows the store's: entries up to `floor` go (XTRIM MINID), and
        then the names the store pruned with its rows (read from Redis first: a name Redis has
        was committed to the store before it was sent, so it is there unless pruned)."""
        def run() -> None:
            with self.r.pipeline(transaction=True) as p:
                p.xtrim(link.LOG, minid=entry_id(floor + 1), approximate=False)
                p.hset(link.META, "floor", floor)
                p.execute()

        await link.call(run)
        self.floor = floor
        mirrored = await link.call(lambda: self.r.hkeys(link.NAMES))
        kept = await self.gw.store.read(lambda conn: {str(r[0]).encode() for r in conn.execute(
            "SELECT code FROM log_names")})
        gone = [code for code in mirrored if code not in kept]
        for i in range(0, len(gone), 1000):
            await link.call(partial(self.r.hdel, link.NAMES, *gone[i:i + 1000]))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


"""The writer: turns ingested records into stored, published frames, one batch at a time.

Flow per batch: board + drop detection (pure core) -> one SQLite transaction (quotes,
events, line history, stream log with ids; in the event loop's thread when small, else a
worker thread) -> after COMMIT, publish the frames to the hub. Persist, then publish: any
frame a client sees is already in the store, so resuming by id is exact.

Batches are committed one at a time, under one lock, by the writer's task (feeds' records,
and group commits of whatever queued) or, when nothing is queued or committing, by an
ingest request's own task (`submit_and_wait`), which saves two task switches a push.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .core.board import Board, RowKey
from .core.drops import DropDetector
from .core.frames import (
    DROP,
    ODDS,
    PBP,
    STEAM,
    Frame,
    drop_payload,
    dumps,
    market_status_payload,
    odds_payload,
    pbp_payload,
    steam_payload,
)
from .core.freshness import Freshness
from .core.history import history_price
from .core.market_state import StatusChanges
from .core.model import NO_PRICE, Play, Quote
from .core.sources import PlaySelector, status_payload
from .core.steam import SteamDetector
from .hub import Hub
from .store import LogRow, Store, WriteBatch
from .universe import Universe

logger = logging.getLogger(__name__)

BATCH_MS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0)
# an event counts as in play from its start until this long after it (unless a play says final)
LIVE_WINDOW_MS = 4 * 3600 * 1000
PROBE_S = 1.0  # while commits fail and nothing queues, try a one-row write this often


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class StoreUnavailable(Exception):
    """The rows of a `submit_and_wait` were not stored: a commit failed (nothing of them is kept)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Item:
    quotes: list[Quote] = field(default_factory=list)
    plays: list[Play] = field(default_factory=list)
    source: str = ""
    done: trio.Event | None = None
    failed: str | None = None  # why its rows were not stored

    def finish(self, failed: str | None = None) -> None:
        self.failed = failed
        if self.done is not None:
            self.done.set()


class Writer:
    """Owns the board, the drop detector and the sequence counter. Implements feeds' Sink."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        universe: Universe,
        *,
        board: Board,
        next_seq: int,
        batch_ms: int = 5,
        max_batch_rows: int = 5000,
        clock: Callable[[], int] = wall_ms,
        stale_after_s: float = 60.0,
        steam: SteamDetector | None = None,
    ) -> None:
        self.store, self.hub, self.universe, self.board = store, hub, universe, board
        # several PBP sources per match (issue 5): which plays are published, and failover
        self.play_selector = PlaySelector(stale_after_ms=int(stale_after_s * 1000))
        self.detector = DropDetector(universe.coverage)
        self.steam = steam or SteamDetector()  # steam moves (issue 15.3), fed with every drop
        self.freshness = Freshness()
        self.final_matches: set[str] = set()
        # event_id -> (sport, home, away, commence) as stored: an unchanged event is not
        # rewritten with every quote (its updated_ms is when its details last changed)
        self._stored_events: dict[str, tuple[str, str, str, int]] = {}
        self._next_seq = next_seq
        self._batch_s = batch_ms / 1000
        self._max_rows = max_batch_rows
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[_Item](1024)
        # held by whichever task commits: this writer's task, or an ingest request committing
        # its own rows (submit_and_wait); `_queued` counts items sent and not yet committed
        self._lock = trio.Lock()
        self._queued = 0
        self.own_commits = 0  # requests that committed their rows in their own task
        self.running = False
        self.rows_committed = 0
        self.batches = 0
        self.last_batch_ms = 0.0
        self.drops_published = 0
        self.batch_ms_buckets = [0] * (len(BATCH_MS_BUCKETS) + 1)  # histogram of commit latency
        self.batch_ms_sum = 0.0
        self.on_commit: list[Callable[[list[Frame]], None]] = []
        # after each commit, with what it stored (the cluster's Redis mirror: gateway/cluster/)
        self.on_batch: list[Callable[[WriteBatch], None]] = []
        # after a failed commit: the in-memory state is rebuilt from the store by this
        # (set by the app; the store is the truth, the board and baselines follow it)
        self.reload: Callable[[], Awaitable[None]] | None = None
        self.failure: str | None = None  # the last commit failed for this reason (cleared by a success)
        self.failures = 0
        self.recorder: Any = None  # feeds.replay.Recorder when `gateway record` runs

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    # -- Sink ------------------------------------------------------------------------------
    async def submit_quotes(self, quotes: list[Quote], *, source: str) -> None:
        if quotes:
            await self._queue(_Item(quotes=quotes, source=source))

    async def submit_plays(self, plays: list[Play]) -> None:
        if plays:
            await self._queue(_Item(plays=plays))

    async def _queue(self, item: _Item) -> None:
        self._queued += 1
        try:
            await self._send.send(item)
        except BaseException:
            self._queued -= 1
            raise

    async def submit_and_wait(self, quotes: list[Quote], plays: list[Play], *, source: str) -> None:
        """Return once the records are committed and published; StoreUnavailable if they could
        not be stored (nothing of them was kept or published).

        When nothing is queued or committing, and the rows are few enough for a commit in the
        event loop's thread, the caller's task commits them itself: handing a one-quote push
        to the writer's task and back cost two task switches, more than the commit (issue 19).
        Otherwise they queue and join the writer's next group commit."""
        item = _Item(quotes=quotes, plays=plays, source=source)
        if (self.running and self._queued == 0 and self.failure is None and not self._lock.locked()
                and len(quotes) + len(plays) <= self.store.inline_max_rows):
            self._lock.acquire_nowait()
            try:
                with trio.CancelScope(shield=True):  # once built, the rows are stored and published
                    await self._commit([item])
            finally:
                self._lock.release()
            self.own_commits += 1
        else:
            item.done = trio.Event()
            await self._queue(item)
            await item.done.wait()
        if item.failed is not None:
            raise StoreUnavailable(item.failed)

    # -- the task ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        try:
            while True:
                first = await self._next_item()
                if first is None:  # failed and idle: see whether the store takes writes again
                    await self._probe()
                    continue
                items = [first]
                try:
                    await self._lock.acquire()  # after a request's own commit, if one is under way
                    try:
                        await self._gather(items)
                        await self._commit(items)
                    finally:
                        self._lock.release()
                finally:
                    self._queued -= len(items)
        finally:
            self.running = False

    async def _gather(self, items: list[_Item]) -> None:
        """Group commit: what queued while the last batch committed joins this one; with
        batch_s > 0, also wait that long for more (fewer, larger transactions)."""
        rows = sum(len(i.quotes) + len(i.plays) for i in items)
        deadline = trio.current_time() + self._batch_s
        while rows < self._max_rows:
            item: _Item | None = None
            try:
                item = self._receive.receive_nowait()
            except trio.WouldBlock:
                if self._batch_s > 0:
                    with trio.move_on_at(deadline):
                        item = await self._receive.receive()
            if item is None:
                return
            items.append(item)
            rows += len(item.quotes) + len(item.plays)

    async def _next_item(self) -> _Item | None:
        """The next queued item; None after PROBE_S of quiet while the store is failing."""
        if self.failure is None:
            return await self._receive.receive()
        with trio.move_on_after(PROBE_S):
            return await self._receive.receive()
        return None

    async def _probe(self) -> None:
        """A one-row write: clears the failure (and /readyz) once the store takes writes again,
        even when no ingest comes to try."""
        try:
            await self.store.write_fn(lambda conn: conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('writer_probe', ?)", (str(self._clock()),)))
        except Exception as exc:
            self.failures += 1
            self.failure = _reason(exc)
            return
        logger.warning("writer: the store takes writes again (after %d failed)", self.failures)
        self.failure, self.failures = None, 0
        if self.reload is not None:
            await self.reload()

    async def flush(self) -> None:
        """Commit whatever is queued (used at shutdown, after feeds stopped)."""
        items = []
        while True:
            try:
                items.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        if items:
            try:
                async with self._lock:
                    await self._commit(items)
            finally:
                self._queued -= len(items)

    async def _commit(self, items: list[_Item]) -> None:
        """Build, store, then publish. A commit that fails publishes nothing and answers its
        waiters with the reason; the board and baselines are rebuilt from the store. When the
        cause may be one row (a value the store refuses), each request is retried alone, so
        that row never costs another request its place."""
        started = time.perf_counter()
        error = await self._try(items)
        if error is None:
            self._account(started)
            return
        await self._recover(error)
        if len(items) > 1 and not _environmental(error):
            for item in items:
                one = await self._try([item])
                if one is not None:
                    await self._recover(one)
                    item.finish(_reason(one))
            return
        for item in items:
            item.finish(_reason(error))

    async def _try(self, items: list[_Item]) -> BaseException | None:
        """One transaction for `items`; on success publish and answer them."""
        now = self._clock()
        batch, frames = self._build(items, now)
        try:
            await self.store.write(batch)
        except Exception as exc:
            return exc
        if self.failure is not None:
            logger.warning("writer: commits succeed again (after %d failed)", self.failures)
            self.failure, self.failures = None, 0
        for event_id, sport, home, away, commence, _ in batch.events:
            self._stored_events[event_id] = (sport, home, away, commence)
        self.hub.publish(frames)
        for hook in self.on_commit:
            hook(frames)
        for batch_hook in self.on_batch:
            batch_hook(batch)
        for item in items:
            item.finish()
        self.rows_committed += len(batch)
        self.drops_published += sum(1 for f in frames if f.stream == DROP)
        return None

    async def _recover(self, error: BaseException) -> None:
        """After a failed commit: nothing of it was stored or published. Its ids are not
        reused (a gap is harmless; a reused id could be one another writer stored), and the
        in-memory board and drop baselines are rebuilt from what the store holds."""
        self.failures += 1
        reason = _reason(error)
        if self.failure != reason:
            logger.error("writer: a commit failed, nothing of it was stored: %s", reason)
        self.failure = reason
        if self.reload is not None:
            try:
                await self.reload()
            except Exception as exc:
                logger.error("writer: could not reload the board from the store: %s", _reason(exc))

    def _account(self, started: float) -> None:
        self.batches += 1
        ms = self.last_batch_ms = (time.perf_counter() - started) * 1000
        self.batch_ms_sum += ms
        self.batch_ms_buckets[bisect.bisect_left(BATCH_MS_BUCKETS, ms)] += 1

    def resync(self, board: Board, detector: DropDetector, last_seq: int) -> None:
        """Adopt state rebuilt from the store (no await: atomic for every reader)."""
        self.board.replace_with(board)
        self.detector = detector
        self._stored_events.clear()
        self._next_seq = max(self._next_seq, last_seq + 1)

    # -- pure-ish batch building (runs in the trio thread; no awaits) -------------------------
    def _seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def _build(self, items: list[_Item], now: int) -> tuple[WriteBatch, list[Frame]]:
        b = WriteBatch()
        frames: list[Frame] = []
        changed: dict[RowKey, set[str]] = {}
        events: dict[str, Quote] = {}
        statuses = StatusChanges()
        board, steam_at = self.board, self.steam.threshold
        for item in items:
            if self.recorder is not None:
                if item.quotes:
                    self.recorder.write_quotes(item.quotes, item.source, now)
                if item.plays:
                    self.recorder.write_plays(item.plays, now)
            for q in item.quotes:
                old = board.cell(q)
                if q.price == NO_PRICE:  # a suspension notice without a price: the last price, in that state
                    if old is None:
                        continue
                    q = dataclasses.replace(q, price=old.price, point=q.point if q.point is not None else old.point)
                self._note_catalog(b, q)
                events[q.event_id] = q
                key = board.apply(q)
                if key is not None:
                    changed.setdefault(key, set()).add(q.market_key)
                    b.quotes.append((q.event_id, q.bookmaker, q.market_key, q.outcome, q.player or "",
                                     q.point, q.price, q.observed_at_ms, q.status))
                    b.history.append((q.event_id, q.bookmaker, q.market_key, q.outcome, q.player or "", q.point,
                                      q.observed_at_ms, history_price(q)))
                    if old is None or old.status != q.status:
                        statuses.note(q, "open" if old is None else old.status)
                drop = self.detector.observe(q)
                if drop is not None:
                    live = self._is_live(q.event_id, q.commence_time_ms, now)
                    frames.append(self._frame(b, DROP, drop_payload(drop, timestamp_ms=now), q.sport_key,
                                              q.event_id, now, live))
                    if abs(drop.delta) >= steam_at:
                        steam = self.steam.observe(drop)
                        if steam is not None:
                            frames.append(self._frame(b, STEAM, steam_payload(steam, timestamp_ms=now),
                                                      q.sport_key, q.event_id, now, live))
            if item.quotes:
                for sport in {q.sport_key for q in item.quotes}:
                    self.freshness.record(item.source, sport, now, role="primary")
            for p in item.plays:
                self._add_play(b, frames, p, now)
        stored = self._stored_events
        for q in events.values():
            if stored.get(q.event_id) != (q.sport_key, q.home_team, q.away_team, q.commence_time_ms):
                b.events.append((q.event_id, q.sport_key, q.home_team, q.away_team, q.commence_time_ms, now))
        for market_key, outcome, status, q in statuses.frames(board):
            ev = board.events[q.event_id]
            payload = market_status_payload(ev, q.bookmaker, market_key, outcome, status, q.reason, timestamp_ms=now)
            frames.append(self._frame(b, ODDS, payload, ev.sport_key, q.event_id, now,
                                      self._is_live(q.event_id, ev.commence_time_ms, now)))
        for key, markets in changed.items():
            row = self.board.row(key)
            payload = odds_payload(row, tuple(sorted(markets)), timestamp_ms=now)
            ev = self.board.events[key[0]]
            frames.append(self._frame(b, ODDS, payload, ev.sport_key, key[0], now,
                                      self._is_live(key[0], ev.commence_time_ms, now)))
        return b, frames

    def _frame(self, b: WriteBatch, stream: str, payload: dict[str, object], sport: str,
               event_id: str, now: int, live: bool) -> Frame:
        seq = self._seq()
        payload["id"] = seq
        text = dumps(payload)
        b.log.append(LogRow(seq, stream, sport, event_id, live, now, text, payload))  # the store keeps `payload`
        return Frame(seq=seq, stream=stream, payload=payload, text=text, live=live)

    def _is_live(self, event_id: str, commence_ms: int, now: int) -> bool:
        return commence_ms <= now < commence_ms + LIVE_WINDOW_MS and event_id not in self.final_matches

    def _note_catalog(self, b: WriteBatch, q: Quote) -> None:
        u = self.universe
        if q.sport_key not in u.active_sports:
            u.activate_sport(q.sport_key)
            b.sports.add(q.sport_key)
        if q.bookmaker not in u.coverage:
            coverage = u.add_book(q.bookmaker)
            self.detector.set_coverage(q.bookmaker, coverage)
            b.books.append((q.bookmaker, u.book_title(q.bookmaker), coverage))
        if q.market_key not in u.markets:
            u.markets.add(q.market_key)
            b.markets.add(q.market_key)

    def _add_play(self, b: WriteBatch, frames: list[Frame], p: Play, now: int) -> None:
        u = self.universe
        if p.sport_key not in u.active_sports:
            u.activate_sport(p.sport_key)
            b.sports.add(p.sport_key)
        self.freshness.record(p.source, p.sport_key, now, role=p.role)  # every source, published or not
        # -- sources (issue 5): duplicates and a fresh primary's backups are not published;
        # a promotion or restoration is a resumable stream_status frame on the PBP stream
        decision = self.play_selector.decide(p, now)
        if decision.status is not None:
            frames.append(self._frame(b, PBP, status_payload(decision.status, timestamp_ms=now), p.sport_key,
                                      p.match_id, now, p.match_id not in self.final_matches))
        for q in decision.emit:
            if q.status == "final":
                self.final_matches.add(q.match_id)
            period = None if q.period is None else str(q.period)
            b.live_state.append((q.match_id, q.sport_key, q.team_or_player_a, q.team_or_player_b, q.score_a,
                                 q.score_b, period, q.clock, q.status, q.source, q.description, now))
            seq = self._seq()
            payload = pbp_payload(q, seq=seq)
            text = dumps(payload)
            b.log.append(LogRow(seq, PBP, q.sport_key, q.match_id, q.status != "final", now, text, payload))
            frames.append(Frame(seq=seq, stream=PBP, payload=payload, text=text, live=q.status != "final"))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def _environmental(error: BaseException) -> bool:
    """A failure of the store itself (disk full, I/O error, read-only, locked), which retrying
    each request alone cannot fix, as opposed to a value one row brought."""
    return isinstance(error, sqlite3.OperationalError | OSError) and not isinstance(error, UnicodeError)

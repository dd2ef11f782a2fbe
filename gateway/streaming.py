"""A stream session, independent of transport: connect, snapshot or resume, then live.

Resume without gap or duplicate: replay from the store up to its head without holding a
subscription (no buffer pressure however long the replay), then subscribe, replay once
more what committed meanwhile, and from then on drop live frames with ids already sent.
Both SSE and WebSocket consume `StreamSession.frames()`, which yields lists of frames so
transports can write everything queued in one send (an empty list marks the switch to live).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .auth import KEY_REVOKED, TIER_REQUIRED
from .core.board import Board, RowKey
from .core.conflate import conflate
from .core.filters import Filter
from .core.formats import convert_row
from .core.frames import Frame
from .hub import SLOW_CONSUMER, Subscriber
from .store import LogRow, read_log
from .writer import LIVE_WINDOW_MS, wall_ms

if TYPE_CHECKING:
    from .handle import Gateway

REPLAY_PAGE = 1000  # frames read and built per step of a replay: memory stays flat whatever the backlog
MAX_COALESCE = 512  # frames per write; bounds one write's size and latency


@dataclass
class StreamPlan:
    streams: tuple[str, ...]
    sports: frozenset[str] | None
    filter: Filter
    heartbeat_s: float
    connected: dict[str, Any]
    snapshot: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
    last_event_id: int | None = None
    bad_last_event_id: bool = False  # a Last-Event-ID header that is not a number
    transport: str = "sse"


def frame_from_row(r: LogRow) -> Frame:
    """The frame live clients got, rebuilt from the log (the store decodes the payload)."""
    payload = r.data if r.data is not None else json.loads(r.payload)
    return Frame(seq=r.seq, stream=r.stream, payload=payload, text=r.payload, live=r.live)


def read_frames(conn: Any, after: int, streams: tuple[str, ...], sports: frozenset[str] | None, flt: Filter,
                limit: int) -> tuple[int | None, list[Frame], bool]:
    """One page of a replay (in a worker thread): (last id read, the frames that match `flt`,
    whether the page was full, i.e. more may follow)."""
    rows = read_log(conn, after=after, streams=streams, sports=sports, limit=limit)
    if not rows:
        return None, [], False
    frames = [f for f in map(frame_from_row, rows) if flt.matches(f)]
    if flt.odds_format != "american":
        frames = [f.as_format(flt.odds_format) for f in frames]
    if flt.conflate_ms:  # a page is one window: the latest per row, ids kept (exact resume)
        frames = conflate(frames)
    return rows[-1].seq, frames, len(rows) == limit


def heartbeat(connections: int) -> Frame:
    return Frame.control({"type": "heartbeat", "timestamp": wall_ms(), "connections": connections})


def reset_frame(reason: str) -> Frame:
    return Frame.control({"type": "stream_status", "status": "reset", "reason": reason,
                          "fresh_snapshot_required_to_clear": True, "timestamp": wall_ms()})


def final_frame(reason: str) -> Frame:
    if reason == KEY_REVOKED:
        return Frame.control({"type": "error", "error": KEY_REVOKED,
                              "message": "this API key was revoked; the stream is closed", "timestamp": wall_ms()})
    if reason == TIER_REQUIRED:
        return Frame.control({"type": "error", "error": TIER_REQUIRED,
                              "message": "this API key's tier no longer includes this stream; it is closed",
                              "timestamp": wall_ms()})
    if reason == SLOW_CONSUMER:
        return Frame.control({"type": "error", "error": "slow_consumer",
                              "message": "this client fell too far behind and was cut off; reconnect "
                                         "with Last-Event-ID to resume without loss",
                              "timestamp": wall_ms()})
    return Frame.control({"type": "stream_status", "status": "closing", "reason": reason,
                          "message": "the gateway is going away; reconnect with Last-Event-ID to resume",
                          "timestamp": wall_ms()})


# Waits until the client goes away (True); cancelled when there is something to send. Lets
# one task per stream both notice a disconnect and serve frames (no watcher task).
Idle = Callable[[], Awaitable[bool]]


class StreamSession:
    def __init__(self, gw: Gateway, plan: StreamPlan, idle: Idle | None = None,
                 left: Callable[[], bool] | None = None) -> None:
        self.gw = gw
        self.plan = plan
        self.idle = idle
        self.left = left  # a quick check that the client has gone (between replay pages)
        self.gone = False  # the client went away (seen by `idle` or `left`)
        self.ended: str | None = None  # ended by the server (`end`): a revoked key, a tier without it
        self.sub: Subscriber | None = None
        self.live = False  # snapshot/replay done; frames now come from the hub only
        self.cursor = 0  # highest id sent; live frames at or below it were replayed already

    def close(self) -> None:
        if self.sub is not None:
            self.gw.hub.unsubscribe(self.sub)

    def end(self, reason: str) -> None:
        """End the stream from outside (no await): live, the hub cuts it and its task sends
        the final frame; in a replay, the replay stops and the final frame follows."""
        self.ended = reason
        if self.sub is not None:
            self.gw.hub.cut(self.sub, reason)

    async def resume_problem(self, last_id: int) -> str | None:
        return await self.gw.view.resume_problem(last_id)

    async def _replay(self) -> AsyncGenerator[list[Frame], None]:
        """Frames after the cursor, a page at a time. Pages are read and built in a worker
        thread, one replay at a time across the process (`replay_slots`): resumes share that
        budget instead of starving live delivery. Stops as soon as the client has left."""
        plan, gw = self.plan, self.gw
        more = True
        while more and not self.client_left():
            async with gw.replay_slots:  # from the store, or Redis on a cluster edge (view.py)
                last, chunk, more = await gw.view.replay_page(self.cursor, plan.streams, plan.sports, plan.filter,
                                                              REPLAY_PAGE)
            if last is not None:
                self.cursor = last
            if chunk:
                yield chunk
            del chunk

    def client_left(self) -> bool:
        if self.left is not None and self.left():
            self.gone = True
        return self.gone or self.ended is not None

    async def frames(self) -> AsyncGenerator[list[Frame], None]:
        plan, hub = self.plan, self.gw.hub
        problem = "unknown_id" if plan.bad_last_event_id else None
        resume_from = None
        if plan.last_event_id is not None:
            problem = await self.resume_problem(plan.last_event_id)
            resume_from = None if problem else plan.last_event_id
        if resume_from is None:  # subscribed before `connected`: whoever saw it misses nothing after
            self.sub = hub.subscribe(plan.streams, plan.sports, plan.filter, transport=plan.transport)
        try:
            hello = [Frame.control(plan.connected)]
            yield [*hello, reset_frame(problem)] if problem else hello
            del hello  # a stream lives for hours: keep nothing per connection that is not needed
            plan.connected = {}
            if resume_from is not None:
                self.cursor = resume_from
                async with aclosing(self._replay()) as chunks:
                    async for chunk in chunks:
                        yield chunk
                if self.ended is not None:
                    yield [final_frame(self.ended)]
                    return
                if self.gone:
                    return
                self.sub = hub.subscribe(plan.streams, plan.sports, plan.filter, transport=plan.transport)
                async with aclosing(self._replay()) as chunks:  # what committed during the first pass
                    async for chunk in chunks:
                        yield chunk
                if self.gone:
                    return
            elif plan.snapshot is not None:
                snap = await plan.snapshot()
                if snap is not None:
                    yield [Frame.control(snap)]
                del snap
            assert self.sub is not None
            # the live part is inlined (not a sub-generator): one less object per idle stream
            sub, receive = self.sub, self.sub.receive
            self.live = True
            yield []  # the switch to live: a transport may hand the subscriber to a direct writer now
            while True:
                batch, last = await self._next_batch(sub, receive)
                if batch:
                    yield batch
                if last:
                    return
                del batch
        finally:
            self.close()

    async def _next_batch(self, sub: Subscriber, receive: Any) -> tuple[list[Frame], bool]:
        """Frames queued for `sub` (coalesced), a heartbeat after a quiet `heartbeat_s`, or
        (last=True) the final frame once the hub cut the subscriber off."""
        batch: list[Frame] = []
        if self.idle is None:
            with trio.move_on_after(self.plan.heartbeat_s):
                try:
                    batch.append(await receive.receive())
                except trio.EndOfChannel:
                    pass
        else:
            try:
                batch.append(receive.receive_nowait())
            except trio.WouldBlock:
                with trio.move_on_after(self.plan.heartbeat_s) as waiting:
                    sub.wakeup = waiting.cancel  # the hub cancels the wait when it queues a frame
                    self.gone = await self.idle()
                sub.wakeup = None
                if self.gone:
                    return [], True
                try:
                    batch.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    pass
            except trio.EndOfChannel:
                pass
        if sub.cut_reason is not None:
            return [final_frame(sub.cut_reason)], True
        if not batch:
            return [heartbeat(len(self.gw.hub))], False
        return self._unsent(_take_queued(receive, batch)), False

    def queued(self) -> list[Frame]:
        """What is queued for the subscriber now (up to MAX_COALESCE frames), no await."""
        assert self.sub is not None
        return self._unsent(_take_queued(self.sub.receive, []))

    def _unsent(self, batch: list[Frame]) -> list[Frame]:
        """`batch` less the frames the replay already sent (live frames at or below the cursor)."""
        cursor = self.cursor
        return [f for f in batch if f.seq is None or f.seq > cursor] if cursor else batch


def _take_queued(receive: Any, batch: list[Frame]) -> list[Frame]:
    """`batch` with what is queued in `receive` after it, up to MAX_COALESCE frames in all."""
    while len(batch) < MAX_COALESCE:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return batch


def odds_snapshot(board: Board, sports: frozenset[str] | None, flt: Filter, *, now: int, max_age_s: int,
                  since: int | None, limit: int, final: set[str]) -> tuple[list[dict[str, Any]], bool]:
    """Current OddsRows matching a connection, newest first; (rows, truncated)."""
    picked: list[tuple[int, RowKey]] = []
    oldest = now - max_age_s * 1000
    for key in board.row_keys():
        event_id, book, kind, _player, _market = key
        ev = board.events[event_id]
        if sports is not None and ev.sport_key not in sports:
            continue
        if flt.event_ids is not None and event_id not in flt.event_ids:
            continue
        if flt.bookmakers is not None and book not in flt.bookmakers:
            continue
        if flt.kinds is not None and kind not in flt.kinds:
            continue
        if flt.markets is not None and flt.markets.isdisjoint(m for m, _ in board.cells(key)):
            continue
        if flt.live_only and not (ev.commence_time_ms <= now < ev.commence_time_ms + LIVE_WINDOW_MS
                                  and event_id not in final):
            continue
        last = board.last_update(key)
        if last < oldest or (since is not None and last <= since):
            continue
        picked.append((last, key))
    picked.sort(reverse=True)
    rows = [board.row(k) for _, k in picked[:limit]]
    if flt.odds_format != "american":
        rows = [convert_row(r, flt.odds_format) for r in rows]
    return rows, len(picked) > limit



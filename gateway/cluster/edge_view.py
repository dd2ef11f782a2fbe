"""What streams and REST read on an edge (gateway/view.py's interface): the follower's copy
in memory, and Redis for resumes (XRANGE past the id) and recent drops (XREVRANGE)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ..auth import ApiKey
from ..core.filters import Filter
from ..core.frames import Frame
from ..core.freshness import Freshness
from ..core.logcodec import STREAM_NO
from ..livestate import live_state_json
from ..view import View
from ..web.common import ApiError
from . import link
from .follower import Follower, NameError_
from .records import entry_id, entry_topic, seq_of

if TYPE_CHECKING:
    from ..app import Gateway

RECENT_PAGE = 1_000
RECENT_MAX_ENTRIES = 100_000  # /recent on an edge looks this far back in the stream at most
STREAM_PATIENCE_S = 30.0  # a resume waits this long for a Redis that is away
REST_PATIENCE_S = 2.0
UNREADY_AFTER_S = 15.0
T = TypeVar("T")


class EdgeView(View):
    def __init__(self, gw: Gateway, follower: Follower) -> None:
        super().__init__(gw.store, gw.writer)
        self.f = follower
        self.edge = True

    @property
    def final_matches(self) -> set[str]:
        return self.f.final

    @property
    def freshness(self) -> Freshness:
        return self.f.freshness

    @property
    def last_seq(self) -> int:
        return self.f.cursor

    @property
    def writer_url(self) -> str:
        return self.f.writer_url

    def readiness(self) -> tuple[bool, str | None, dict[str, Any]]:
        """Ready once bootstrapped, also while Redis restarts (clients wait, streams stay); not
        ready after UNREADY_AFTER_S without Redis, so a load balancer sends new clients elsewhere."""
        f = self.f
        down_s = f.down_for()
        ok = f.synced and down_s < UNREADY_AFTER_S
        fields = {"role": "edge", "edge_id": f.edge_id, "redis": f.connected, "last_event_id": f.cursor}
        if down_s:
            fields["redis_down_s"] = round(down_s, 1)
        return ok, None if ok else f"not following Redis for {down_s:.0f} s: {f.error}", fields

    async def _redis(self, fn: Callable[[], T], patience_s: float) -> T:
        """A Redis read, retried while Redis is away (a restart): the client waits up to
        `patience_s`, then the error stands (the stream ends and the client reconnects; REST 503)."""
        deadline = trio.current_time() + patience_s
        pause = 0.05
        while True:
            try:
                return await link.call(fn)
            except link.errors():
                if trio.current_time() + pause > deadline:
                    raise
                await trio.sleep(pause)
                pause = min(pause * 2, 1.0)

    # -- resume: Redis has every id the writer committed, also those this edge has not read yet ----
    async def resume_problem(self, last_id: int) -> str | None:
        floor, head = await self._redis(lambda: self.f.r.hmget(link.META, "floor", "head"), STREAM_PATIENCE_S)
        if last_id > max(int(head or 0), self.f.cursor):
            return "unknown_id"
        return "resume_window_exceeded" if last_id < int(floor or 0) else None

    async def replay_page(self, after: int, streams: tuple[str, ...], sports: frozenset[str] | None, flt: Filter,
                          limit: int) -> tuple[int | None, list[Frame], bool]:
        wanted = {STREAM_NO[s] for s in streams}

        def read() -> tuple[int | None, list[Frame], bool]:
            entries = self.f.r.xrange(link.LOG, min="(" + entry_id(after), count=limit)
            frames = []
            for entry, fields in entries:
                topic = entry_topic(fields[b"f"])
                if topic & 3 not in wanted or (sports is not None and self.f.name(topic >> 2) not in sports):
                    continue
                frame = self.f.frame(entry, fields)[0]
                if flt.matches(frame):
                    frames.append(frame)
            last = seq_of(entries[-1][0]) if entries else None
            return last, frames, len(entries) == limit

        return await self._redis(read, STREAM_PATIENCE_S)

    # -- polling ---------------------------------------------------------------------------------
    async def live_state(self, sports: Iterable[str], match_id: str | None, *,
                         live_only: bool = False) -> list[dict[str, Any]]:
        wanted = set(sports)
        rows = [r for r in self.f.live.values() if r[1] in wanted and (not match_id or match_id == "*" or
                                                                        r[0] == match_id)
                and not (live_only and r[8] == "final")]
        rows.sort(key=lambda r: r[11], reverse=True)
        return [live_state_json(r) for r in rows]

    async def recent_drops(self, sports: frozenset[str] | None, flt: Filter, *, limit: int, scan: int,
                           since_ms: int | None = None, until_ms: int | None = None) -> list[dict[str, Any]]:
        streams = {STREAM_NO[s] for s in flt.drop_streams}

        def read() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            seen = examined = 0
            upper = "+"
            while examined < RECENT_MAX_ENTRIES:
                entries = self.f.r.xrevrange(link.LOG, max=upper, count=RECENT_PAGE)
                for entry, fields in entries:
                    topic = entry_topic(fields[b"f"])
                    if topic & 3 not in streams or (sports is not None and self.f.name(topic >> 2) not in sports):
                        continue
                    try:
                        frame, ms, payload = self.f.frame(entry, fields)
                    except NameError_:
                        continue
                    if since_ms is not None and ms < since_ms:
                        return out  # newest first: everything further is older
                    if until_ms is not None and ms > until_ms:
                        continue
                    seen += 1
                    if flt.matches(frame):
                        out.append(payload)
                        if len(out) >= limit:
                            return out
                    if seen >= scan:
                        return out
                examined += len(entries)
                if len(entries) < RECENT_PAGE:
                    break
                upper = "(" + entries[-1][0].decode()
            return out

        try:
            return await self._redis(read, REST_PATIENCE_S)
        except link.errors():
            raise ApiError(503, "unavailable", "this edge cannot reach Redis right now; retry shortly",
                           headers={"Retry-After": "2"}) from None

    # -- keys (mirrored by the writer, applied by the follower) ------------------------------------
    async def lookup_key(self, key: str) -> ApiKey | None:
        from ..auth import hash_key

        rec = self.f.keys.get(hash_key(key))
        return None if rec is None or rec.revoked else rec.key

    async def active_key(self, key_id: int) -> ApiKey | None:
        rec = self.f.key_ids.get(key_id)
        return None if rec is None or rec.revoked else rec.key

    async def key_states(self, ids: list[int]) -> dict[int, tuple[str, bool]]:
        return {i: (rec.key.tier, rec.revoked) for i in ids if (rec := self.f.key_ids.get(i)) is not None}

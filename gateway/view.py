"""What streams and REST read, behind one interface: the store and the writer in one process
(and on a cluster's writer), Redis and the edge's memory on a cluster edge
(gateway/cluster/edge_view.py). Handlers ask `gw.view`, never which process they run in.

The board itself (`gw.board`) and the catalog (`gw.universe`) are the same objects either
way: in one process the writer keeps them, on an edge the Redis follower does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from .auth import ApiKey, key_states, lookup_key
from .core.filters import Filter
from .core.frames import Frame
from .core.freshness import Freshness
from .livestate import live_state_rows
from .store import pruned_through, recent_log

if TYPE_CHECKING:
    from .store import Store
    from .writer import Writer


class View:
    """The single-process view: SQLite through the store, state kept by the writer."""

    edge = False  # a cluster edge: ingest and webhooks are the writer's (421 wrong_role)

    def __init__(self, store: Store, writer: Writer) -> None:
        self.store, self.writer = store, writer

    @property
    def writer_url(self) -> str:
        """Where ingest and webhooks are served, when not here (a cluster edge)."""
        return ""

    # -- state the writer keeps ------------------------------------------------------------
    @property
    def final_matches(self) -> set[str]:
        return self.writer.final_matches

    @property
    def freshness(self) -> Freshness:
        return self.writer.freshness

    @property
    def last_seq(self) -> int:
        return self.writer.last_seq

    def readiness(self) -> tuple[bool, str | None, dict[str, Any]]:
        """(ready, why not, fields for /readyz)."""
        w = self.writer
        ok = self.store.open and w.running and w.failure is None
        reason = None if ok else (w.failure and f"the last commit failed: {w.failure}") or \
            "store not open or writer not running"
        return ok, reason, {"store": self.store.open, "writer": w.running, **({"store_error": w.failure} if not ok
                                                                                 else {})}

    # -- resume ------------------------------------------------------------------------------
    async def resume_problem(self, last_id: int) -> str | None:
        """Why a resume from `last_id` cannot be exact (the reset frame's reason), or None."""
        if last_id > self.writer.last_seq:
            return "unknown_id"
        floor = await self.store.read(pruned_through)
        return "resume_window_exceeded" if last_id < floor else None

    async def replay_page(self, after: int, streams: tuple[str, ...], sports: frozenset[str] | None, flt: Filter,
                          limit: int) -> tuple[int | None, list[Frame], bool]:
        """One page of a replay: (last id read, the frames that match, whether more may follow)."""
        from .streaming import read_frames

        return await self.store.read(partial(read_frames, after=after, streams=streams, sports=sports, flt=flt,
                                             limit=limit))

    # -- polling -------------------------------------------------------------------------------
    async def live_state(self, sports: Iterable[str], match_id: str | None, *,
                         live_only: bool = False) -> list[dict[str, Any]]:
        wanted = list(sports)
        return await self.store.read(lambda conn: [r for s in wanted for r in live_state_rows(
            conn, s, match_id, live_only=live_only)])

    async def recent_drops(self, sports: frozenset[str] | None, flt: Filter, *, limit: int, scan: int,
                           since_ms: int | None = None, until_ms: int | None = None) -> list[dict[str, Any]]:
        """The newest drops (and steam frames with kinds=steam) of these sports created within
        [since_ms, until_ms], matching `flt`, newest first; `scan` of each stream are looked at."""
        out = []
        for stream in flt.drop_streams:
            rows = await self.store.read(partial(recent_log, stream=stream, sports=sports, limit=scan,
                                                 since_ms=since_ms, until_ms=until_ms))
            for r in rows:
                payload = r.data if r.data is not None else json.loads(r.payload)
                if flt.matches(Frame(seq=r.seq, stream=stream, payload=payload, text=r.payload, live=r.live)):
                    out.append(payload)
        out.sort(key=lambda d: -int(d["id"]))
        return out[:limit]

    # -- keys -----------------------------------------------------------------------------------
    async def lookup_key(self, key: str) -> ApiKey | None:
        return await self.store.read(lambda conn: lookup_key(conn, key))

    async def active_key(self, key_id: int) -> ApiKey | None:
        """The key with this id, unless it was revoked or deleted (dashboard sessions)."""
        row = await self.store.read(lambda conn: conn.execute(
            "SELECT id, name, tier, scopes, prefix FROM api_keys WHERE id = ? AND revoked_ms IS NULL",
            (key_id,)).fetchone())
        if row is None:
            return None
        return ApiKey(row[0], row[1], row[2], frozenset(s for s in row[3].split(",") if s), row[4])

    async def key_states(self, ids: list[int]) -> dict[int, tuple[str, bool]]:
        """{key id: (tier, revoked)} (a deleted key is absent)."""
        return await self.store.read(partial(key_states, ids=ids))

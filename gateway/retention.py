"""The retention task: prune the stream log by age and by size, and warn before the disk fills.

- By age: every `[database] prune_interval_s`, rows older than `retention_hours` go (the
  resume window). The cutoff id is found by binary search (`store.last_seq_before`).
- By size: with `[database] max_size_mb`, every few seconds; once the pages in use pass 95 %
  of it, the oldest rows go until they are under 90 %. Freed pages are reused by new rows,
  so the file stops growing near the limit (it does not shrink: SQLite keeps its pages).
- Deletes run in chunks of CHUNK_ROWS ids, each its own short transaction, so the writer's
  commits go on between them. Resuming from a deleted id gets the `reset` frame.
- Each check also projects the database's size once the log covers the whole resume window
  at the current rate (gateway/core/storage.py) and logs a warning, at most hourly, when that
  would not fit in the disk's free space.
"""

from __future__ import annotations

import logging
import shutil
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from .core.storage import GrowthMeter, disk_warning, projected_bytes, rows_over_limit
from .store import Store, last_seq_before, log_extent, used_bytes
from .writer import wall_ms

if TYPE_CHECKING:
    from .handle import Gateway

logger = logging.getLogger(__name__)

SIZE_CHECK_S = 10.0
CHUNK_ROWS = 20_000
WARN_EVERY_MS = 3_600_000
MAX_SIZE_ROUNDS = 50  # per check: a limit far below the file is reached over a few checks


async def prune_by_age(store: Store, before_ms: int) -> int:
    """Delete the rows created before `before_ms`, oldest first, in chunks."""
    through = await store.read(partial(last_seq_before, before_ms=before_ms))
    deleted = 0
    while through:
        oldest = (await store.read(log_extent))[0]
        if not oldest or oldest > through:
            break
        deleted += await store.delete_log(min(through, oldest + CHUNK_ROWS - 1))
    if deleted:
        await store.delete_log(0, names=True)
    return deleted


async def prune_to_size(store: Store, max_bytes: int) -> int:
    """Delete the oldest rows while the pages in use are over the limit (see module doc)."""
    deleted = 0
    for _ in range(MAX_SIZE_ROUNDS):
        used = await store.read(used_bytes)
        oldest, _, top = await store.read(log_extent)
        n = rows_over_limit(used=used, max_bytes=max_bytes, rows=top - oldest + 1 if oldest else 0)
        if not n:
            break
        deleted += await store.delete_log(oldest + min(n, CHUNK_ROWS) - 1)
    if deleted:
        await store.delete_log(0, names=True)
    return deleted


class Retention:
    """The task's state between checks: the growth meter and when it last warned."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.meter = GrowthMeter()
        self.warned_ms: int | None = None
        self.over_limit_warned = False
        self.next_age_ms = 0

    async def check(self, now: int) -> None:
        store, db = self.gw.store, self.gw.config.database
        pruned = 0
        if now >= self.next_age_ms:
            pruned += await prune_by_age(store, now - int(db.retention_hours * 3_600_000))
            if pruned:
                logger.info("pruned %d stream-log rows older than %g h", pruned, db.retention_hours)
            history = await store.prune_history(now - int(db.history_days * 86_400_000))
            if history:
                logger.info("pruned %d line-history changes older than %g days", history, db.history_days)
            self.next_age_ms = now + int(db.prune_interval_s * 1000)
        limit = int(db.max_size_mb * 2**20)
        if limit:
            by_size = await prune_to_size(store, limit)
            if by_size:
                logger.info("pruned the %d oldest stream-log rows: [database] max_size_mb = %g", by_size,
                            db.max_size_mb)
            pruned += by_size
            await self._check_limit(limit)
        await self._check_disk(now, pruned=bool(pruned), limit=limit)

    async def _check_limit(self, limit: int) -> None:
        used = await self.gw.store.read(used_bytes)
        oldest = (await self.gw.store.read(log_extent))[0]
        if used > limit and not oldest and not self.over_limit_warned:
            self.over_limit_warned = True
            logger.warning("database: [database] max_size_mb = %g is less than what the database holds besides "
                           "the stream log (%.0f MiB); the log is kept empty", self.gw.config.database.max_size_mb,
                           used / 2**20)

    async def _check_disk(self, now: int, *, pruned: bool, limit: int) -> None:
        store = self.gw.store
        if store.path == ":memory:":
            return
        used = await store.read(used_bytes)
        _, oldest_ms, top = await store.read(log_extent)
        self.meter.add(now, top, used, pruned=pruned)
        rate = self.meter.rate()
        if rate is None:
            return
        rows_per_s, per_row = rate
        db = self.gw.config.database
        file_bytes, free = await trio.to_thread.run_sync(_file_and_free, Path(store.path))
        projected = projected_bytes(used=used, rows_per_s=rows_per_s, bytes_per_row=per_row,
                                    covered_s=(now - oldest_ms) / 1000 if oldest_ms else 0.0,
                                    window_s=db.retention_hours * 3600, max_bytes=limit)
        message = disk_warning(projected=projected, file_bytes=file_bytes, free_bytes=free, rows_per_s=rows_per_s,
                               bytes_per_row=per_row, window_h=db.retention_hours)
        if message is None:
            self.warned_ms = None
        elif self.warned_ms is None or now - self.warned_ms >= WARN_EVERY_MS:
            self.warned_ms = now
            logger.warning("database %s: %s", store.path, message)


def _file_and_free(path: Path) -> tuple[int, int]:
    """(database + WAL bytes, free bytes on their disk)."""
    files = (path, path.with_name(path.name + "-wal"))
    return sum(p.stat().st_size for p in files if p.exists()), shutil.disk_usage(path.parent).free


async def prune_forever(gw: Gateway) -> None:
    retention = Retention(gw)
    db = gw.config.database
    while True:
        await retention.check(wall_ms())
        await trio.sleep(min(SIZE_CHECK_S, db.prune_interval_s))

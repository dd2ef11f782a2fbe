"""The store: schema version check, batched writes, log reads, pruning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store import LogRow, Store, StoreError, WriteBatch, max_seq, prune_log, pruned_through, read_log


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError, match="schema version 7"):
        Store(path)


async def test_batch_write_read_and_prune(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        batch = WriteBatch(log=[LogRow(i, "drop" if i % 2 else "odds", "nba", "e", False, 1000 * i, "{}")
                                for i in range(1, 11)])
        await store.write(batch)
        assert store.read_sync(max_seq) == 10
        drops = await store.read(lambda c: read_log(c, 0, ("drop",), None, 100))
        assert [r.seq for r in drops] == [1, 3, 5, 7, 9]
        assert [r.seq for r in await store.read(lambda c: read_log(c, 6, ("drop", "odds"), ["nba"], 2))] == [7, 8]
        deleted = store.write_fn_sync(lambda c: prune_log(c, 5000))
        assert deleted == 4 and store.read_sync(pruned_through) == 4
        assert store.read_sync(max_seq) == 10  # ids never go back, even after pruning
    finally:
        store.close()


async def test_failed_batch_stores_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        dup = [LogRow(1, "drop", "nba", "e", False, 1, "{}"), LogRow(1, "drop", "nba", "e", False, 1, "{}")]
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(WriteBatch(log=dup))
        assert store.read_sync(max_seq) == 0
    finally:
        store.close()


async def test_checkpoints_beside_a_busy_writer_keep_the_wal_bounded(tmp_path: Path) -> None:
    """Commits never wait for a checkpoint (SQLite's automatic one is off), yet the WAL is
    copied and restarted while the writer keeps committing, so it stops growing."""
    import trio

    path = tmp_path / "s.db"
    store = Store(str(path))
    seq = 0

    async def write_batches(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            rows = [LogRow(seq + i + 1, "odds", "nba", "e", False, 0, "x" * 2000) for i in range(20)]
            seq += 20
            await store.write(WriteBatch(log=rows))

    try:
        with trio.fail_after(60):
            await write_batches(200)  # ~10 MB of log: far past SQLite's 1000-page auto checkpoint
            assert store.read_sync(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
            grown = (path.parent / "s.db-wal").stat().st_size
            assert grown > 8_000_000  # nothing was copied on commit
            copied = 0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write_batches, 400)

                async def checkpoints() -> None:
                    nonlocal copied
                    while seq < 12_000:
                        copied += await store.checkpoint()
                        await trio.sleep(0.02)

                nursery.start_soon(checkpoints)
            assert copied > 0
            log_frames = store.read_sync(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][1])
            assert log_frames < 2_000  # restarted during the run: ~3,000 frames were written after the first one
            assert store.read_sync(max_seq) == 12_000
    finally:
        store.close()

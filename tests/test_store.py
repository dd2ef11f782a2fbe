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

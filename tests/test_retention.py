"""The retention task: prune by age and by size, and warn when the disk would fill."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway.app import open_gateway
from gateway.retention import Retention
from gateway.store import WriteBatch, log_extent, pruned_through, read_log, used_bytes

from .conftest import make_config
from .test_store import MS, drop_row


async def write_drops(gw: Any, first: int, n: int, *, ms: int = MS) -> None:
    for start in range(first, first + n, 5_000):
        rows = [drop_row(s, event=f"ev{s % 40}", ms=ms) for s in range(start, min(first + n, start + 5_000))]
        await gw.store.write(WriteBatch(log=rows))


async def test_rows_older_than_the_window_go(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gw = open_gateway(make_config(tmp_path, database={"retention_hours": 1}))
    try:
        await write_drops(gw, 1, 100, ms=MS)
        await write_drops(gw, 101, 50, ms=MS + 3_000_000)
        caplog.set_level(logging.INFO, "gateway.retention")
        await Retention(gw).check(MS + 3_700_000)  # an hour after the first 100
        assert gw.store.read_sync(pruned_through) == 100
        assert gw.store.read_sync(log_extent)[0] == 101
        assert "pruned 100 stream-log rows older than 1 h" in caplog.text
    finally:
        gw.store.close()


async def test_a_size_limit_keeps_the_database_under_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gw = open_gateway(make_config(tmp_path, database={"max_size_mb": 2}))
    retention = Retention(gw)
    try:
        caplog.set_level(logging.INFO, "gateway.retention")
        for round_no in range(6):  # ~1 MiB of log a round
            await write_drops(gw, 1 + round_no * 20_000, 20_000, ms=MS + round_no)
            await retention.check(MS + round_no * 10_000)
            assert gw.store.read_sync(used_bytes) <= 2 * 2**20 * 0.95
        oldest, _, top = gw.store.read_sync(log_extent)
        assert top == 120_000 and oldest == gw.store.read_sync(pruned_through) + 1 > 60_000
        newest = await gw.store.read(lambda c: read_log(c, top - 1, ("drop",), None, 5))
        assert [r.seq for r in newest] == [top]  # the newest rows are kept
        assert "max_size_mb = 2" in caplog.text
        file = await trio.Path(gw.store.path).stat()
        assert file.st_size < 3 * 2**20  # freed pages are reused: the file stops near the limit
    finally:
        gw.store.close()


async def test_a_limit_below_the_rest_of_the_database_says_so(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    gw = open_gateway(make_config(tmp_path, database={"max_size_mb": 0.01}))
    try:
        await write_drops(gw, 1, 1_000)
        await Retention(gw).check(MS)
        assert gw.store.read_sync(log_extent)[0] == 0  # the log is empty ...
        assert "is less than what the database holds besides the stream log" in caplog.text  # ... and said why
    finally:
        gw.store.close()


async def test_warns_when_the_projected_size_passes_the_free_disk(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    free = [10 * 2**30]
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, free[0]))  # type: ignore[attr-defined]
    gw = open_gateway(make_config(tmp_path))
    retention = Retention(gw)
    try:
        caplog.set_level(logging.WARNING, "gateway.retention")
        await write_drops(gw, 1, 1_000)
        await retention.check(MS)
        await write_drops(gw, 1_001, 6_000)
        await retention.check(MS + 60_000)  # 100 rows/s, ~45 bytes each: ~0.7 GiB in 48 h
        assert "grows to" not in caplog.text  # 10 GiB free: fine
        free[0] = 100 * 2**20
        await write_drops(gw, 7_001, 6_000)
        await retention.check(MS + 120_000)
        warnings = [r.getMessage() for r in caplog.records if "grows to" in r.getMessage()]
        assert len(warnings) == 1 and "6,000 stream-log rows/min" in warnings[0] and "100.0 MiB free" in warnings[0]
        await write_drops(gw, 13_001, 6_000)
        await retention.check(MS + 180_000)
        assert len([r for r in caplog.records if "grows to" in r.getMessage()]) == 1  # at most hourly
    finally:
        gw.store.close()

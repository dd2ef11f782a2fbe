"""Database size arithmetic: growth rate, projection, disk warning, rows over a size limit."""

from __future__ import annotations

from gateway.core.storage import HIGH, LOW, GrowthMeter, disk_warning, projected_bytes, rows_over_limit

MIB = 2**20


def test_growth_meter_needs_enough_rows_and_restarts_after_a_prune() -> None:
    meter = GrowthMeter(window_ms=600_000, min_rows=1_000)
    assert meter.rate() is None
    meter.add(0, 10_000, 5 * MIB)
    meter.add(60_000, 10_600, 5 * MIB + 600 * 50)
    assert meter.rate() is None  # 600 rows: too few pages for a per-row figure
    meter.add(120_000, 11_200, 5 * MIB + 1_200 * 50)
    assert meter.rate() == (10.0, 50.0)  # 1,200 rows in 120 s, 50 bytes each
    meter.add(180_000, 11_800, 4 * MIB, pruned=True)  # pages in use shrank: start again
    assert meter.rate() is None
    for minute in range(1, 30):  # the window slides: only the last ten minutes count
        meter.add(180_000 + minute * 60_000, 11_800 + minute * 3_000, 4 * MIB + minute * 3_000 * 40)
    rows_per_s, per_row = meter.rate() or (0, 0)
    assert rows_per_s == 50.0 and per_row == 40.0 and len(meter.samples) <= 12


def test_projection_adds_the_rows_still_to_come_until_the_window_is_full() -> None:
    hour = 3600.0
    assert projected_bytes(used=100 * MIB, rows_per_s=10, bytes_per_row=50, covered_s=2 * hour,
                           window_s=48 * hour) == 100 * MIB + 46 * 3600 * 10 * 50
    assert projected_bytes(used=100 * MIB, rows_per_s=10, bytes_per_row=50, covered_s=50 * hour,
                           window_s=48 * hour) == 100 * MIB  # steady: pruning removes what arrives
    assert projected_bytes(used=100 * MIB, rows_per_s=1000, bytes_per_row=50, covered_s=0, window_s=48 * hour,
                           max_bytes=500 * MIB) == 500 * MIB


def test_disk_warning_names_the_figures_and_what_to_do() -> None:
    common = {"rows_per_s": 2000.0, "bytes_per_row": 45.0, "window_h": 48.0}
    assert disk_warning(projected=900 * MIB, file_bytes=100 * MIB, free_bytes=800 * MIB, **common) is None
    message = disk_warning(projected=15 * 2**30, file_bytes=2**30, free_bytes=10 * 2**30, **common)
    assert message is not None
    assert "120,000 stream-log rows/min" in message and "about 15.0 GiB" in message
    assert "14.0 GiB more than now" in message and "10.0 GiB free" in message
    assert "retention_hours" in message and "max_size_mb" in message


def test_rows_over_limit_prunes_from_the_high_mark_down_to_the_low_one() -> None:
    limit = 100 * MIB
    assert rows_over_limit(used=int(limit * HIGH), max_bytes=limit, rows=1_000_000) == 0
    assert rows_over_limit(used=200 * MIB, max_bytes=0, rows=1_000_000) == 0  # no limit
    n = rows_over_limit(used=120 * MIB, max_bytes=limit, rows=1_200_000)  # ~105 bytes a row
    assert n == round((120 - 100 * LOW) * MIB / (120 * MIB / 1_200_000))
    assert 1 <= rows_over_limit(used=120 * MIB, max_bytes=limit, rows=10) <= 10
    assert rows_over_limit(used=120 * MIB, max_bytes=limit, rows=0) == 0

"""How big the database will get: the stream log's growth rate, its projected size, and how
many of its oldest rows a size limit wants gone.

Pure: times and sizes come in as numbers (the retention task in gateway/retention.py
measures them). Bytes are pages in use: free pages left by pruning are reused by new rows,
so a file stops growing once what is in use stays under its size.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# a size limit starts pruning when pages in use pass HIGH of it, and prunes down to LOW
HIGH, LOW = 0.95, 0.90


@dataclass(slots=True)
class Sample:
    ms: int
    seq: int  # the log's last id
    used: int  # bytes of pages in use


@dataclass
class GrowthMeter:
    """Rows per second and bytes per row of the stream log over a sliding window.

    Bytes per row come from how much the pages in use grew per new row; a prune shrinks
    them, so the window restarts after one."""

    window_ms: int = 15 * 60_000
    min_rows: int = 2_000  # fewer new rows than this: too few pages for a per-row figure
    samples: deque[Sample] = field(default_factory=deque)

    def add(self, ms: int, seq: int, used: int, *, pruned: bool = False) -> None:
        if pruned:
            self.samples.clear()
        self.samples.append(Sample(ms, seq, used))
        while len(self.samples) > 2 and self.samples[1].ms <= ms - self.window_ms:
            self.samples.popleft()

    def rate(self) -> tuple[float, float] | None:
        """(rows per second, bytes per row), or None while the window holds too little."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        rows, span = last.seq - first.seq, last.ms - first.ms
        if rows < self.min_rows or span <= 0 or last.used <= first.used:
            return None
        return rows * 1000 / span, (last.used - first.used) / rows


def projected_bytes(*, used: int, rows_per_s: float, bytes_per_row: float, covered_s: float, window_s: float,
                    max_bytes: int = 0) -> int:
    """Pages in use once the log covers the whole resume window at this rate: what is in
    use now, plus the rows still to come before pruning by age starts removing as many as
    arrive. A size limit caps it."""
    to_come = max(0.0, window_s - covered_s) * rows_per_s * bytes_per_row
    projected = used + math.ceil(to_come)
    return min(projected, max_bytes) if max_bytes else projected


def disk_warning(*, projected: int, file_bytes: int, free_bytes: int, rows_per_s: float, bytes_per_row: float,
                 window_h: float) -> str | None:
    """The warning to log when the projected database would outgrow the free disk space."""
    more = projected - file_bytes
    if more <= free_bytes:
        return None
    return (f"at the current rate ({rows_per_s * 60:,.0f} stream-log rows/min, {bytes_per_row:,.0f} bytes each) "
            f"the database grows to about {_size(projected)} within the {window_h:g} h resume window, "
            f"{_size(more)} more than now, but the disk has {_size(free_bytes)} free: lower [database] "
            "retention_hours or set [database] max_size_mb")


def rows_over_limit(*, used: int, max_bytes: int, rows: int) -> int:
    """How many of the oldest log rows to delete so that pages in use drop to LOW of the limit
    (0 while they are under HIGH of it). Rows are assumed to cost the same; the caller
    measures again after deleting and repeats if that was not enough."""
    if not max_bytes or used <= max_bytes * HIGH or rows <= 0:
        return 0
    per_row = used / rows  # everything in use counted against the log: errs toward fewer rows
    return min(rows, max(1, math.ceil((used - max_bytes * LOW) / per_row)))


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1024:,.0f} KiB"

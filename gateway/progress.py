"""Progress for `gateway replay` and `gateway record`: one line on stderr.

On a terminal the line is rewritten in place (`\\r`), at most every `min_interval_s`; when
stderr is a file or a pipe, a plain line is written at each tenth (replay) or every
`interval_s` (record), so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import trio

from .core.model import Play, Quote
from .feeds.replay import Recorder


def render_bar(label: str, done: int, total: int, width: int = 30) -> str:
    """`replay  340/1062 batches [#########.....................] 32%`"""
    filled = width * done // total if total else width
    pct = 100 * done // total if total else 100
    return f"{label}  {done}/{total} batches [{'#' * filled}{'.' * (width - filled)}] {pct}%"


class ProgressBar:
    def __init__(self, label: str = "replay", *, stream: TextIO | None = None, tty: bool | None = None,
                 width: int = 30, min_interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.width = label, width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._last_at = float("-inf")
        self._last_step = -1

    def update(self, done: int, total: int) -> None:
        """A replay progress callback: (batches done, batches in the recording)."""
        final = done >= total
        if self.tty:
            now = self._clock()
            if not final and now - self._last_at < self.min_interval_s:
                return
            self._last_at = now
            self.stream.write("\r" + render_bar(self.label, done, total, self.width) + ("\n" if final else ""))
        else:
            step = 10 * done // total if total else 10
            if step == self._last_step:
                return
            self._last_step = step
            self.stream.write(render_bar(self.label, done, total, self.width) + "\n")
        self.stream.flush()


class CountingRecorder(Recorder):
    """A Recorder that counts what it wrote, for the progress line."""

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        super().__init__(path, append=append)
        self.path = Path(path)
        self.batches = 0
        self.rows = 0

    def write_quotes(self, quotes: Sequence[Quote], source: str, at_ms: int) -> None:
        super().write_quotes(quotes, source, at_ms)
        self.batches += 1
        self.rows += len(quotes)

    def write_plays(self, plays: Sequence[Play], at_ms: int) -> None:
        super().write_plays(plays, at_ms)
        self.batches += 1
        self.rows += len(plays)


def record_line(rec: CountingRecorder) -> str:
    return f"record  {rec.batches} batches, {rec.rows} rows -> {rec.path}"


async def report_recording(rec: CountingRecorder, *, stream: TextIO | None = None, tty: bool | None = None,
                           interval_s: float | None = None) -> None:
    """Show what `rec` has written until cancelled: in place on a terminal (0.5 s), else a line
    every 10 s; the totals once more at the end."""
    out = stream if stream is not None else sys.stderr
    in_place = out.isatty() if tty is None else tty
    every = interval_s if interval_s is not None else (0.5 if in_place else 10.0)
    try:
        while True:
            await trio.sleep(every)
            out.write(("\r" + record_line(rec)) if in_place else record_line(rec) + "\n")
            out.flush()
    finally:  # the totals, also when stopped between two reports
        out.write(("\r" if in_place else "") + record_line(rec) + "\n")
        out.flush()

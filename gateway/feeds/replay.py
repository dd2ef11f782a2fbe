"""Recordings: feed batches as JSONL, written by `Recorder` and played back by `run_replay`.

One batch per line, in the order the feed produced them:
    {"kind":"quotes","at_ms":INT,"source":STR,"rows":[flat quotes]}
    {"kind":"plays","at_ms":INT,"rows":[pbp rows]}
Rows use the ingest shapes (CONTRACT.md 7), so a recording is also a sample of what push
clients send. Playback keeps the recorded gaps (divided by `speed`) and shifts every time in
the recording by one whole-second offset so it ends up "now": relative times, and therefore
the drops the writer detects, are the same on every run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from ..config import FeedConfig
from ..core.model import Play, Quote
from ..core.parse import RowError, parse_flat_quote, parse_pbp_row, play_to_row, quote_to_flat
from .base import Sink

DEMO_RECORDING = Path(__file__).resolve().parent.parent / "data" / "demo_recording.jsonl"


class RecordingError(ValueError):
    """A recording line that cannot be read; the message gives the file and line number."""


@dataclass(frozen=True, slots=True)
class Batch:
    kind: str  # quotes | plays
    at_ms: int
    source: str | None  # quotes batches only
    quotes: tuple[Quote, ...] = ()
    plays: tuple[Play, ...] = ()

    def __len__(self) -> int:
        return len(self.quotes) + len(self.plays)


class Recorder:
    """Appends batches to a JSONL file, flushed per batch so a crash loses at most one."""

    def __init__(self, path: str | Path, *, append: bool = True) -> None:
        self._file = Path(path).open("a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def write_quotes(self, quotes: Sequence[Quote], source: str, at_ms: int) -> None:
        self._write({"kind": "quotes", "at_ms": at_ms, "source": source, "rows": [quote_to_flat(q) for q in quotes]})

    def write_plays(self, plays: Sequence[Play], at_ms: int) -> None:
        self._write({"kind": "plays", "at_ms": at_ms, "rows": [play_to_row(p) for p in plays]})

    def _write(self, batch: dict[str, Any]) -> None:
        self._file.write(json.dumps(batch, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _parse_batch(line: str) -> Batch:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise RecordingError("a batch must be a JSON object")
    kind, at_ms, rows = obj.get("kind"), obj.get("at_ms"), obj.get("rows")
    if kind not in ("quotes", "plays"):
        raise RecordingError(f"kind: {kind!r} must be quotes or plays")
    if not isinstance(at_ms, int) or isinstance(at_ms, bool):
        raise RecordingError("at_ms: expected an integer")
    if not isinstance(rows, list):
        raise RecordingError("rows: expected a list")
    try:
        if kind == "plays":
            return Batch("plays", at_ms, None, plays=tuple(parse_pbp_row(r, now_ms=at_ms) for r in rows))
        source = obj.get("source")
        if not isinstance(source, str) or not source:
            raise RecordingError("source: expected a non-empty string")
        return Batch("quotes", at_ms, source, quotes=tuple(parse_flat_quote(r, now_ms=at_ms) for r in rows))
    except RowError as exc:
        raise RecordingError(f"rows: {exc}") from None


def read_recording(path: str | Path) -> Iterator[Batch]:
    """Batches of a recording in file order; a bad line raises RecordingError naming it."""
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield _parse_batch(line)
            except RecordingError as exc:
                raise RecordingError(f"{path}: line {n}: {exc}") from None


def shift_batch(batch: Batch, shift_ms: int, source: str | None = None) -> Batch:
    """The batch moved `shift_ms` later in time (and renamed to `source`, if given)."""
    quotes = tuple(
        dataclasses.replace(q, observed_at_ms=q.observed_at_ms + shift_ms,
                            commence_time_ms=q.commence_time_ms + shift_ms)
        for q in batch.quotes
    )
    plays = tuple(
        dataclasses.replace(p, occurred_at_ms=p.occurred_at_ms + shift_ms, captured_at_ms=p.captured_at_ms + shift_ms,
                            source=source or p.source)
        for p in batch.plays
    )
    return Batch(batch.kind, batch.at_ms + shift_ms, source or batch.source, quotes, plays)


async def _play_once(batches: Sequence[Batch], feed: FeedConfig, sink: Sink,
                     progress: Callable[[int, int], None] | None) -> None:
    first_at = batches[0].at_ms
    now_ms = int(time.time() * 1000)
    # whole seconds: ISO commence times stay exact, and every run shifts the same way
    shift = (now_ms - first_at) // 1000 * 1000
    start = trio.current_time()
    for done, batch in enumerate(batches, 1):
        await trio.sleep_until(start + (batch.at_ms - first_at) / 1000 / feed.speed)  # no drift
        moved = shift_batch(batch, shift, feed.name or None)
        if moved.kind == "quotes":
            await sink.submit_quotes(list(moved.quotes), source=moved.source or feed.source)
        else:
            await sink.submit_plays(list(moved.plays))
        if progress is not None:
            progress(done, len(batches))


async def run_replay(feed: FeedConfig, sink: Sink, *, progress: Callable[[int, int], None] | None = None) -> None:
    """Play `feed.path` into the sink at `feed.speed`; again from the start if `feed.loop`.

    Sources are the recorded ones unless the feed has an explicit `name`, which replaces them.
    """
    batches = await trio.to_thread.run_sync(lambda: list(read_recording(feed.path)))
    if not batches:
        if progress is not None:
            progress(0, 0)
        return
    while True:
        await _play_once(batches, feed, sink, progress)
        if not feed.loop:
            return

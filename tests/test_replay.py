"""Recordings: Recorder -> JSONL -> read_recording / run_replay, same sequence every time."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import trio

from gateway.config import FeedConfig
from gateway.core.drops import DropDetector
from gateway.core.model import Play, Quote
from gateway.core.steam import SteamDetector
from gateway.feeds.replay import DEMO_RECORDING, Batch, Recorder, RecordingError, read_recording, run_replay
from gateway.feeds.simulator import Simulator

T0 = 1_778_612_400_000
STEP_MS = 1000


class FakeSink:
    """Remembers every batch in arrival order: (kind, source, quotes, plays)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, str | None, list[Quote], list[Play]]] = []

    async def submit_quotes(self, quotes: list[Quote], *, source: str) -> None:
        self.batches.append(("quotes", source, quotes, []))

    async def submit_plays(self, plays: list[Play]) -> None:
        self.batches.append(("plays", None, [], plays))

    def quotes(self) -> list[Quote]:
        return [q for b in self.batches for q in b[2]]

    def plays(self) -> list[Play]:
        return [p for b in self.batches for p in b[3]]

    def sources(self) -> set[str | None]:
        return {b[1] for b in self.batches if b[0] == "quotes"}


def record(path: Path, steps: int = 40) -> list[tuple[list[Quote], list[Play]]]:
    sim = Simulator(("basketball_nba", "soccer_epl"), events_per_sport=1, rng=random.Random(9), now_ms=T0)
    out = []
    with Recorder(path) as rec:
        for i in range(steps):
            quotes, plays = sim.step(T0 + i * STEP_MS)
            if quotes:
                rec.write_quotes(quotes, "simulator", T0 + i * STEP_MS)
            if plays:
                rec.write_plays(plays, T0 + i * STEP_MS)
            out.append((quotes, plays))
    return out


def test_read_back_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    steps = record(path)
    batches = list(read_recording(path))
    assert [q for b in batches for q in b.quotes] == [q for qs, _ in steps for q in qs]
    assert [p for b in batches for p in b.plays] == [p for _, ps in steps for p in ps]
    assert all(b.source == "simulator" for b in batches if b.kind == "quotes")
    assert [b.at_ms for b in batches] == sorted(b.at_ms for b in batches)


def test_recorder_appends(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, steps=3)
    n = len(list(read_recording(path)))
    record(path, steps=3)
    assert len(list(read_recording(path))) == 2 * n
    with Recorder(path, append=False):
        pass
    assert list(read_recording(path)) == []


async def test_replay_keeps_the_sequence_shifted_to_now(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    steps = record(path)
    sink = FakeSink()
    seen: list[tuple[int, int]] = []
    await run_replay(FeedConfig(type="replay", path=str(path), speed=1000), sink,
                     progress=lambda done, total: seen.append((done, total)))
    recorded = [q for qs, _ in steps for q in qs]
    replayed = sink.quotes()
    assert len(replayed) == len(recorded)
    shift = replayed[0].observed_at_ms - recorded[0].observed_at_ms
    assert shift % 1000 == 0 and shift > 0
    for old, new in zip(recorded, replayed, strict=True):
        assert new.observed_at_ms - old.observed_at_ms == shift
        assert new.commence_time_ms - old.commence_time_ms == shift
        assert (new.event_id, new.bookmaker, new.market_key, new.outcome, new.price, new.point) == (
            old.event_id, old.bookmaker, old.market_key, old.outcome, old.price, old.point)
    recorded_plays = [p for _, ps in steps for p in ps]
    assert [(p.description, p.occurred_at_ms - shift) for p in sink.plays()] == [
        (p.description, p.occurred_at_ms) for p in recorded_plays]
    assert sink.sources() == {"simulator"}
    total = len(list(read_recording(path)))
    assert seen == [(k, total) for k in range(1, total + 1)]


async def test_replay_gives_the_same_drops_every_time(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, steps=80)
    runs = []
    for _ in range(2):
        sink = FakeSink()
        await run_replay(FeedConfig(type="replay", path=str(path), speed=1000), sink)
        drops = DropDetector().observe_all(sink.quotes())
        runs.append([(d.quote.event_id, d.quote.bookmaker, d.quote.market_key, d.prev, d.new, d.elapsed_ms)
                     for d in drops])
    assert runs[0] and runs[0] == runs[1]


async def test_replay_loops_and_renames_the_source(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    record(path, steps=5)
    total = len(list(read_recording(path)))
    sink = FakeSink()
    feed = FeedConfig(type="replay", name="tape", path=str(path), speed=1000, loop=True)
    with trio.move_on_after(5) as scope:
        async with trio.open_nursery() as nursery:
            def progress(done: int, _total: int) -> None:
                if len(sink.batches) >= 2 * total + 1:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(lambda: run_replay(feed, sink, progress=progress))
    assert not scope.cancelled_caught
    assert len(sink.batches) == 2 * total + 1
    assert sink.sources() == {"tape"}
    assert sink.plays() and all(p.source == "tape" for p in sink.plays())


GOOD_LINE = json.dumps({"kind": "plays", "at_ms": T0, "rows": []})


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "a batch must be a JSON object"),
        (json.dumps({"kind": "odds", "at_ms": T0, "rows": []}), "kind"),
        (json.dumps({"kind": "plays", "at_ms": "later", "rows": []}), "at_ms"),
        (json.dumps({"kind": "plays", "at_ms": T0, "rows": {}}), "rows: expected a list"),
        (json.dumps({"kind": "quotes", "at_ms": T0, "rows": []}), "source"),
        (json.dumps({"kind": "quotes", "at_ms": T0, "source": "s", "rows": [{"sport_key": "x"}]}), "rows: "),
        (json.dumps({"kind": "plays", "at_ms": T0, "rows": [{"match_id": "m"}]}), "rows: "),
    ],
)
def test_bad_line_names_its_number(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD_LINE}\n\n{GOOD_LINE}\n{line}\n{GOOD_LINE}\n", encoding="utf-8")
    with pytest.raises(RecordingError) as info:
        list(read_recording(path))
    assert f"line 4: {reason}" in str(info.value)


async def test_replay_of_a_bad_file_fails_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD_LINE}\nnope\n", encoding="utf-8")
    sink = FakeSink()
    with pytest.raises(RecordingError, match="line 2"):
        await run_replay(FeedConfig(type="replay", path=str(path), speed=1000), sink)
    assert sink.batches == []


def test_the_shipped_demo_recording() -> None:
    assert DEMO_RECORDING.stat().st_size < 500_000
    batches: list[Batch] = list(read_recording(DEMO_RECORDING))
    quotes = [q for b in batches for q in b.quotes]
    plays = [p for b in batches for p in b.plays]
    assert quotes and plays
    assert {q.market_key for q in quotes} >= {"h2h", "spreads", "totals", "player_points"}
    assert batches[-1].at_ms - batches[0].at_ms >= 100_000
    drops = DropDetector().observe_all(quotes)
    assert drops  # the demo shows line moves
    # issue 15: a suspension after a score and the drops of its reopening, steam moves, and a
    # closing line (a price before the start) for every game that started
    assert any(q.status == "suspended" for q in quotes) and any(d.after_suspension for d in drops)
    steam = SteamDetector()
    assert any(steam.observe(d) for d in drops)
    started = {q.event_id: q.commence_time_ms for q in quotes if q.commence_time_ms <= batches[-1].at_ms}
    assert started and all(any(q.event_id == e and q.observed_at_ms < t for q in quotes) for e, t in started.items())

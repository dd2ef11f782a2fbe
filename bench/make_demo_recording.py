"""Regenerate gateway/data/demo_recording.jsonl: two minutes of simulated feed, fixed seed.

    python bench/make_demo_recording.py [OUTPUT]

The recording is deterministic: the same seed, start time and step give the same bytes.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from gateway.feeds.replay import DEMO_RECORDING, Recorder
from gateway.feeds.simulator import Simulator

SEED = 2  # picked so that the two minutes hold a suspension after a score (issue 15), steam and plays
SPORTS = ("basketball_nba", "soccer_epl")
EVENTS_PER_SPORT = 1  # one live game per sport: both odds and plays move
START_MS = 1_778_612_400_000  # 2026-05-12T19:00:00Z; replay shifts it to "now"
STEP_MS = 2000
DURATION_S = 120
SOURCE = "simulator"


def make(path: Path) -> tuple[int, int]:
    """Write the recording to `path`; return (quote rows, play rows)."""
    sim = Simulator(SPORTS, events_per_sport=EVENTS_PER_SPORT, rng=random.Random(SEED), now_ms=START_MS,
                    source=SOURCE)
    n_quotes = n_plays = 0
    with Recorder(path, append=False) as rec:
        for i in range(DURATION_S * 1000 // STEP_MS + 1):
            now = START_MS + i * STEP_MS
            quotes, plays = sim.step(now)
            if quotes:
                rec.write_quotes(quotes, SOURCE, now)
            if plays:
                rec.write_plays(plays, now)
            n_quotes += len(quotes)
            n_plays += len(plays)
    return n_quotes, n_plays


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_RECORDING
    path.parent.mkdir(parents=True, exist_ok=True)
    n_quotes, n_plays = make(path)
    print(f"{path}: {n_quotes} quotes, {n_plays} plays, {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()

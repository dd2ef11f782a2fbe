"""Line history: bytes per change and the history query's latency, on simulator data.

Run: python bench/history_query.py [--days 14] [--sports 2] [--step-s 5] [--queries 200]

The simulator runs on a simulated clock for `--days` (its events start, play and end; new
ones are listed), and every change goes into a temporary store's history tables the way the
writer puts it there (history_store.write, one transaction per step). Then: the history
tables' bytes per change (pages in use, indexes included, SQLite's dbstat), and the latency
of `read_event` + the answer (`history.series_json`) for random events, p50/p99.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from gateway.core.history import history_price, series_json
from gateway.feeds.simulator import DEFAULT_SPORTS, Simulator
from gateway.history_store import HistorySeries, read_event, write
from gateway.store import Store

T0 = 1_778_612_400_000


def fill(path: str, days: float, sports: int, step_s: float) -> tuple[int, dict[str, int]]:
    store = Store(path, readers=1)
    sim = Simulator(DEFAULT_SPORTS[:sports], events_per_sport=4, rng=random.Random(5), now_ms=T0)
    series = HistorySeries()
    conn = store._writer
    last: dict[tuple[object, ...], tuple[int, float | None, str]] = {}
    commence: dict[str, int] = {}
    changes = 0
    steps = int(days * 86_400 / step_s)
    for i in range(steps):
        now = T0 + int(i * step_s * 1000)
        quotes, _ = sim.step(now)
        rows = []
        for q in quotes:
            key = (q.event_id, q.bookmaker, q.market_key, q.outcome, q.player)
            cell = (q.price, q.point, q.status)
            if last.get(key) == cell:
                continue
            last[key] = cell
            commence[q.event_id] = q.commence_time_ms
            rows.append((q.event_id, q.bookmaker, q.market_key, q.outcome, q.player or "", q.point, q.observed_at_ms,
                         history_price(q)))
        if rows:
            conn.execute("BEGIN IMMEDIATE")
            write(conn, series, rows)
            conn.execute("COMMIT")
            series.commit()
            changes += len(rows)
    store.close()
    return changes, commence


def table_bytes(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        names = ("price_history", "history_series", "history_events", "sqlite_autoindex_history_events_1")
        marks = ",".join("?" * len(names))
        return int(conn.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})", names).fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--sports", type=int, default=2)
    parser.add_argument("--step-s", type=float, default=5.0)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "history.db")
        t0 = time.perf_counter()
        changes, commence = fill(path, args.days, args.sports, args.step_s)
        size = table_bytes(path)
        print(f"{args.days:g} simulated days, {args.sports} sports x 4 events at a time, step {args.step_s:g} s: "
              f"{changes:,} changes of {len(commence):,} events in {time.perf_counter() - t0:.0f} s")
        print(f"history tables: {size / 2**20:.1f} MiB, {size / changes:.1f} bytes per change")
        conn = sqlite3.connect(path)
        rng = random.Random(1)
        events = sorted(commence)
        now = T0 + int(args.days * 86_400_000)
        lat = []
        sizes = []
        for _ in range(args.queries):
            ev = rng.choice(events)
            started = time.perf_counter()
            hist = read_event(conn, ev)
            assert hist is not None
            body = [series_json(s, commence_ms=commence[ev], now_ms=now, from_ms=0, to_ms=now, odds_format="american")
                    for s in hist.series]
            lat.append((time.perf_counter() - started) * 1000)
            sizes.append(sum(len(s["changes"]) for s in body))
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"history query of one event ({args.queries} random events, {statistics.median(sizes):,.0f} changes "
              f"median, {max(sizes):,} max): p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms")
        conn.close()


if __name__ == "__main__":
    main()

"""Storage growth: bytes per stored change, rows per minute, projected size per day.

Runs the gateway's own writer and store in-process on a temporary database, on a simulated
clock (so an hour of market takes a minute or two, not an hour), and measures the database
file (database + WAL after a checkpoint) over a fixed amount of market:

- `demo`: the shipped simulator config (config.toml's [[feeds]]: sports, events per sport,
  interval) stepped for `--hours` of simulated time, after `--warmup-min` minutes that are
  not counted (the first step is the whole board);
- `100/s`, `1000/s`: synthetic price changes at that rate (bench/_loadgen.py's market:
  10 sports x 4 events x 6 per-market books x 6 outcomes, 90 % of moves 1-9 cents, 10 %
  10-30), `--changes` of them, in one batch per 20 ms as a pushing feed would send them.

A "change" is one changed price or point (one ingested quote that moved). Each change stores
its odds_drop frame (when its book covers the market) and a share of an odds_update frame;
the simulator also stores pbp_event frames. Bytes are the growth of the file over the
window; the per-row split comes from SQLite's dbstat (table and index pages).

Run: python bench/storage_growth.py [--hours 3] [--changes 200000] [--only demo|100|1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.app import open_gateway  # noqa: E402
from gateway.config import Config, load_config  # noqa: E402
from gateway.core.model import Quote  # noqa: E402
from gateway.feeds.simulator import DEFAULT_SPORTS, Simulator  # noqa: E402

T0 = 1_778_612_400_000  # 2026-05-12T19:00Z: a fixed start, so runs are comparable
DAY_S = 86_400
WINDOW_H = 48


def db_bytes(path: Path) -> int:
    """Database + WAL on disk (call after a checkpoint)."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def used_bytes(path: Path) -> int:
    """Pages in use (the file less its free pages): what the data costs, whatever SQLite keeps spare."""
    conn = sqlite3.connect(path)
    try:
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
        return int((pages - free) * size)
    finally:
        conn.close()


def log_split(path: Path) -> dict[str, int]:
    """Bytes per table/index whose name starts with stream_log (dbstat)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat WHERE name LIKE 'stream_log%' "
                            "OR name LIKE 'log_%' GROUP BY name").fetchall()
        return {str(n): int(b) for n, b in rows}
    finally:
        conn.close()


def log_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        cols = {r[1] for r in conn.execute("PRAGMA table_info(stream_log)")}
        if "stream" in cols:  # schema 1
            rows = conn.execute("SELECT stream, COUNT(*) FROM stream_log GROUP BY stream").fetchall()
            return {str(s): int(n) for s, n in rows}
        from gateway.store import log_stream_counts  # schema 2

        return log_stream_counts(conn)
    finally:
        conn.close()


@dataclasses.dataclass
class Result:
    name: str
    changes: int
    seconds: float  # simulated
    rows: dict[str, int]
    grown: int  # bytes the file grew (pages in use)
    split: dict[str, int]
    file_end: int

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


async def checkpoint(gw: Any) -> None:
    await gw.store.checkpoint()


async def run_demo(config: Config, hours: float, warmup_min: float, tmp: Path) -> Result:
    feed = next(f for f in config.feeds if f.type == "simulator")
    db = tmp / "demo.db"
    cfg = dataclasses.replace(config, database=dataclasses.replace(config.database, path=str(db)))
    now = [T0]
    gw = open_gateway(cfg, clock=lambda: now[0])
    sim = Simulator(feed.sports or DEFAULT_SPORTS, events_per_sport=feed.events_per_sport,
                    rng=random.Random(feed.seed if feed.seed is not None else 1), now_ms=T0, source=feed.source)
    step_ms = int(feed.interval_s * 1000)
    changes = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(gw.writer.run)

        async def step() -> int:
            quotes, plays = sim.step(now[0])
            await gw.writer.submit_and_wait(quotes, plays, source=feed.source)
            now[0] += step_ms
            return len(quotes)

        await step()  # the whole board: not a change
        for _ in range(int(warmup_min * 60_000 / step_ms)):
            await step()
        await checkpoint(gw)
        rows0, used0, split0 = log_counts(db), used_bytes(db), log_split(db)
        steps = int(hours * 3_600_000 / step_ms)
        for i in range(steps):
            changes += await step()
            if i % 200 == 0:
                await checkpoint(gw)
        await checkpoint(gw)
        nursery.cancel_scope.cancel()
    gw.store.close()
    return _result(f"demo ({len(feed.sports or DEFAULT_SPORTS)} sports x {feed.events_per_sport} events, "
                   f"every {feed.interval_s:g} s)", db, changes, steps * step_ms / 1000, rows0, used0, split0)


def _result(name: str, db: Path, changes: int, seconds: float, rows0: dict[str, int], used0: int,
            split0: dict[str, int]) -> Result:
    rows1, split1 = log_counts(db), log_split(db)
    rows = {k: rows1.get(k, 0) - rows0.get(k, 0) for k in rows1}
    split = {k: split1.get(k, 0) - split0.get(k, 0) for k in split1}
    return Result(name, changes, seconds, rows, used_bytes(db) - used0, split, db_bytes(db))


SYN_SPORTS = ("basketball_nba", "baseball_mlb", "soccer_epl", "americanfootball_nfl", "icehockey_nhl",
              "soccer_spain_la_liga", "soccer_germany_bundesliga", "soccer_italy_serie_a",
              "tennis_atp_us_open", "mma_mixed_martial_arts")
SYN_BOOKS = ("pinnacle", "bet365", "betmgm", "caesars", "bovada", "betrivers")
GAME_KEYS = (("h2h", "home", None), ("h2h", "away", None), ("spreads", "home", -3.5),
             ("spreads", "away", 3.5), ("totals", "over", 45.5), ("totals", "under", 45.5))


def synthetic_market(seed: int) -> list[list[Any]]:
    """[quote template, cents] per key; the templates' events start 3 h after T0 (pre-game)."""
    rng = random.Random(seed)
    keys: list[list[Any]] = []
    for sport in SYN_SPORTS:
        for e in range(4):
            fav = rng.randint(20, 150)
            for book in SYN_BOOKS:
                for market, outcome, point in GAME_KEYS:
                    center = (-fav if outcome == "home" else fav) if market == "h2h" else -10
                    q = Quote(sport, f"syn_{sport}_{e}", f"{sport} Home {e}", f"{sport} Away {e}",
                              T0 + 3 * 3_600_000, book, market, outcome, 0, point, None, T0)
                    keys.append([q, center, center + rng.randint(-15, 15)])
    return keys


def price_of(cents: int) -> int:
    return cents - 100 if cents < 0 else cents + 100


async def run_rate(config: Config, rate: int, n: int, tmp: Path) -> Result:
    db = tmp / f"rate{rate}.db"
    cfg = dataclasses.replace(config, feeds=(), database=dataclasses.replace(config.database, path=str(db)))
    now = [T0]
    gw = open_gateway(cfg, clock=lambda: now[0])
    keys = synthetic_market(rate)
    rng = random.Random(rate + 1)
    tick_ms = 20
    per_tick = max(1, rate * tick_ms // 1000)

    def quotes(picked: list[list[Any]]) -> list[Quote]:
        out = []
        for k in picked:
            q, center, cents = k
            mag = rng.randint(10, 30) if rng.random() < 0.1 else rng.randint(1, 9)
            off = cents - center
            sign = -1 if off > 60 else 1 if off < -60 else rng.choice((-1, 1))
            k[2] = cents = cents + sign * mag
            out.append(dataclasses.replace(q, price=price_of(cents), observed_at_ms=now[0]))
        return out

    async with trio.open_nursery() as nursery:
        await nursery.start(gw.writer.run)
        await gw.writer.submit_and_wait(quotes(keys), [], source="bench")  # baselines
        now[0] += tick_ms
        await checkpoint(gw)
        rows0, used0, split0 = log_counts(db), used_bytes(db), log_split(db)
        sent = ticks = 0
        while sent < n:
            batch = quotes(rng.choices(keys, k=min(per_tick, n - sent)))
            await gw.writer.submit_and_wait(batch, [], source="bench")
            sent += len(batch)
            ticks += 1
            now[0] += tick_ms
            if ticks % 500 == 0:
                await checkpoint(gw)
        await checkpoint(gw)
        nursery.cancel_scope.cancel()
    gw.store.close()
    return _result(f"{rate:,} changes/s (synthetic, {len(keys)} keys)", db, sent, ticks * tick_ms / 1000,
                   rows0, used0, split0)


def report(r: Result, started: float) -> None:
    per_change = r.grown / max(1, r.changes)
    per_row = r.grown / max(1, r.total_rows)
    rows_min = r.total_rows / (r.seconds / 60)
    changes_s = r.changes / r.seconds
    per_day = r.grown / r.seconds * DAY_S
    print(f"\n{r.name}: {r.seconds / 60:,.0f} simulated minutes in {time.monotonic() - started:.0f} s")
    print(f"  changes: {r.changes:,} ({changes_s:,.1f}/s); stream-log rows: {r.total_rows:,} "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(r.rows.items())))
    print(f"  bytes per change: {per_change:,.0f}   bytes per stream-log row: {per_row:,.0f} "
          f"(file growth, pages in use, indexes included)")
    print("  split: " + ", ".join(f"{k} {v / max(1, r.total_rows):,.1f} B/row" for k, v in sorted(r.split.items())))
    print(f"  rows per minute: {rows_min:,.0f}")
    print(f"  projected size per day: {per_day / 2**20:,.0f} MiB; at steady state with a {WINDOW_H} h "
          f"resume window: {per_day * WINDOW_H / 24 / 2**30:,.2f} GiB")
    print(f"  file at the end (database + WAL): {r.file_end / 2**20:,.1f} MiB")


async def main_async(args: argparse.Namespace) -> None:
    config = load_config(ROOT / "config.toml")
    with tempfile.TemporaryDirectory(prefix="storage_growth_") as d:
        tmp = Path(d)
        if args.only in (None, "demo"):
            t = time.monotonic()
            report(await run_demo(config, args.hours, args.warmup_min, tmp), t)
        for rate in (100, 1000):
            if args.only in (None, str(rate)):
                t = time.monotonic()
                report(await run_rate(config, rate, args.changes, tmp), t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0, help="simulated hours of the demo (default 3)")
    parser.add_argument("--warmup-min", type=float, default=5.0, help="demo minutes not counted (default 5)")
    parser.add_argument("--changes", type=int, default=200_000, help="changes per synthetic rate (default 200,000)")
    parser.add_argument("--only", choices=("demo", "100", "1000"))
    args = parser.parse_args()
    os.environ.setdefault("GATEWAY_LOG_LEVEL", "WARNING")
    trio.run(main_async, args)


if __name__ == "__main__":
    main()

"""Drop detection in the pure core: price observations per second on one core.

Run: python bench/core_drops.py [--observations 1000000] [--keys 20000] [--batch 1000]

Quotes go in as the writer feeds them, a batch at a time (`--batch`), and each batch's drops
are counted and let go, as the writer turns them into frames; `--batch 0` keeps all of them
(the cyclic GC then walks a growing list of ~750k results, which the writer never holds).
"""

from __future__ import annotations

import argparse
import random
import time

from gateway.core.drops import DropDetector
from gateway.core.model import Quote

BOOKS = ("pinnacle", "bet365", "betmgm", "caesars", "fanduel", "draftkings")


def make_quotes(n: int, keys: int, seed: int = 1) -> list[Quote]:
    rng = random.Random(seed)
    base = []
    for i in range(keys):
        market = rng.choice(("h2h", "spreads", "totals", "player_points"))
        outcome = {"h2h": "home", "spreads": "away", "totals": "over", "player_points": "under"}[market]
        point = None if market == "h2h" else rng.choice((-3.5, 221.5, 24.5))
        player = f"Player {i % 50}" if market == "player_points" else None
        base.append(("basketball_nba", f"ev{i % 500}", "H", "A", 1_800_000_000_000, BOOKS[i % len(BOOKS)],
                     market, outcome, point, player))
    cents = [rng.randint(-80, 80) for _ in range(keys)]
    quotes = []
    for t in range(n):
        k = rng.randrange(keys)
        cents[k] += rng.choice((-1, 1)) * rng.randint(1, 25)
        c = cents[k]
        price = c - 100 if c < 0 else c + 100
        s, e, h, a, ct, b, m, o, p, pl = base[k]
        quotes.append(Quote(s, e, h, a, ct, b, m, o, price, p, pl, 1_800_000_000_000 + t))
    return quotes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="quotes per call (0: all in one call)")
    args = parser.parse_args()
    quotes = make_quotes(args.observations, args.keys)
    size = args.batch or len(quotes)
    batches = [quotes[i:i + size] for i in range(0, len(quotes), size)]
    best = float("inf")
    drops = 0
    for _ in range(args.repeat):
        det = DropDetector({"fanduel": "game_line", "draftkings": "game_line"})
        observe_all = det.observe_all
        t0 = time.process_time()
        drops = sum([len(observe_all(b)) for b in batches])
        best = min(best, time.process_time() - t0)
    print(f"observations: {len(quotes):,} over {args.keys:,} keys, {len(batches):,} batches; "
          f"drops reported: {drops:,}")
    print(f"best of {args.repeat}: {best:.3f} s CPU -> {len(quotes) / best:,.0f} observations/s on one core "
          f"({best / len(quotes) * 1e6:.2f} us each)")


if __name__ == "__main__":
    main()

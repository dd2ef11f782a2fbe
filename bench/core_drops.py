"""Drop detection in the pure core: price observations per second on one core.

Run: python bench/core_drops.py [--observations 1000000] [--keys 20000] [--batch 1000] [--suspended 0.01]

Quotes go in as the writer feeds them, a batch at a time (`--batch`), and each batch's drops
are counted and let go, as the writer turns them into frames; `--batch 0` keeps all of them
(the cyclic GC then walks a growing list of ~750k results, which the writer never holds).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from collections.abc import Callable, Iterable

from gateway.core.drops import DropDetector
from gateway.core.model import Drop, Quote
from gateway.core.steam import SteamDetector

BOOKS = ("pinnacle", "bet365", "betmgm", "caesars", "fanduel", "draftkings")


def make_quotes(n: int, keys: int, seed: int = 1, big_share: float | None = None) -> list[Quote]:
    """`n` price changes over `keys` keys, each a random step of 1-25 cents; with `big_share`,
    steps of 5 cents and that share of 10-25 (real books quote in 5-cent steps: README
    "Simulator rates" measures 13-15 % of pre-game and ~30 % of in-play moves at 10+ cents)."""
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
        step = rng.randint(1, 25) if big_share is None else (
            rng.choice((10, 15, 20, 25)) if rng.random() < big_share else 5)
        cents[k] += rng.choice((-1, 1)) * step
        c = cents[k]
        price = c - 100 if c < 0 else c + 100
        s, e, h, a, ct, b, m, o, p, pl = base[k]
        quotes.append(Quote(s, e, h, a, ct, b, m, o, price, p, pl, 1_800_000_000_000 + t))
    return quotes


class DropsBefore:
    """The drop detector as it was before issue 15 (no market state), to measure against in
    the same session: the figure in the README is machine- and day-dependent."""

    def __init__(self, coverage: dict[str, str]) -> None:
        self._coverage = coverage
        self._last: dict[tuple[object, ...], tuple[int, int, int]] = {}

    def observe(self, q: Quote) -> Drop | None:
        if q.market_key != "h2h" and self._coverage.get(q.bookmaker) == "game_line":
            return None
        key = (q.event_id, q.bookmaker, q.market_key, q.outcome, q.player, q.point)
        price = q.price
        cents = price + 100 if price < 0 else price - 100
        last = self._last.get(key)
        self._last[key] = (cents, price, q.observed_at_ms)
        if last is None:
            return None
        delta = cents - last[0]
        if delta == 0:
            return None
        return Drop(q, last[1], price, delta, "toward_favorite" if delta < 0 else "toward_dog",
                    max(0, q.observed_at_ms - last[2]))

    def observe_all(self, quotes: Iterable[Quote]) -> list[Drop]:
        observe = self.observe
        return [d for q in quotes if (d := observe(q)) is not None]


COVERAGE = {"fanduel": "game_line", "draftkings": "game_line"}


def market_pass(steam_threshold: int = 10, steam_on: bool = True) -> Callable[[list[Quote]], int]:
    """Drops, market state and (with `steam_on`) steam, as the writer runs them per batch: one
    quote at a time in a loop (the `counting` variants use the detector's list comprehension)."""
    det, steam = DropDetector(COVERAGE), SteamDetector(threshold=steam_threshold)
    if not steam_on:
        steam_threshold = 10**9  # the same loop, no drop reaches the steam detector

    def run(batch: list[Quote]) -> int:
        observe, observe_steam, n = det.observe, steam.observe, 0
        for q in batch:
            d = observe(q)
            if d is not None:
                n += 1
                if abs(d.delta) >= steam_threshold and observe_steam(d) is not None:
                    n += 1
        return n

    return run


def counting(det: DropsBefore | DropDetector) -> Callable[[list[Quote]], int]:
    return lambda batch: len(det.observe_all(batch))


def best_of(repeat: int, make: Callable[[], Callable[[list[Quote]], int]],
            batches: list[list[Quote]]) -> tuple[float, int]:
    best, out = float("inf"), 0
    for _ in range(repeat):
        run = make()
        t0 = time.process_time()
        out = sum([run(b) for b in batches])
        best = min(best, time.process_time() - t0)
    return best, out


def with_suspensions(quotes: list[Quote], share: float, seed: int = 2) -> list[Quote]:
    """`share` of the observations become suspensions (the next price of that key reopens it)."""
    rng = random.Random(seed)
    return [dataclasses.replace(q, status="suspended") if rng.random() < share else q for q in quotes]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="quotes per call (0: all in one call)")
    parser.add_argument("--suspended", type=float, default=0.01, help="share of observations that suspend")
    parser.add_argument("--big-share", type=float, default=None,
                        help="moves of 5 cents and this share of 10-25 (default: 1-25 cents, uniform)")
    args = parser.parse_args()
    quotes = make_quotes(args.observations, args.keys, big_share=args.big_share)
    size = args.batch or len(quotes)

    def split(qs: list[Quote]) -> list[list[Quote]]:
        return [qs[i:i + size] for i in range(0, len(qs), size)]

    batches, mixed = split(quotes), split(with_suspensions(quotes, args.suspended))
    print(f"observations: {len(quotes):,} over {args.keys:,} keys, {len(batches):,} batches")
    results = {}
    # back to back, alternating, best of `repeat` each: the machine may be shared
    for name, make, data in (
            ("drops only, before issue 15", lambda: counting(DropsBefore(COVERAGE)), batches),
            ("drops only, with market state", lambda: counting(DropDetector(COVERAGE)), batches),
            (f"writer's loop + {args.suspended:.0%} suspensions, no steam", lambda: market_pass(steam_on=False),
             mixed),
            (f"drops + steam + {args.suspended:.0%} suspensions", market_pass, mixed)):
        best, out = best_of(args.repeat, make, data)
        results[name] = best
        print(f"{name:40s} best of {args.repeat}: {best:.3f} s CPU -> {len(quotes) / best:>9,.0f} obs/s "
              f"({best / len(quotes) * 1e6:.2f} us each; frames {out:,})")
    base = results["drops only, before issue 15"]
    for name, t in results.items():
        print(f"{name:40s} {(t / base - 1) * 100:+.1f} % CPU against drops only before issue 15")
    loop = results[f"writer's loop + {args.suspended:.0%} suspensions, no steam"]
    print(f"steam itself: {(results[f'drops + steam + {args.suspended:.0%} suspensions'] / loop - 1) * 100:+.1f} % "
          "CPU against the same loop without it")


if __name__ == "__main__":
    main()

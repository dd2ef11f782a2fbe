"""DropDetector: the contract's drop rules (CONTRACT.md 5, "Drop rules"), table-driven."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.drops import GAME_LINE, PER_MARKET, DropDetector
from gateway.core.model import Drop, Quote
from gateway.core.odds import to_cents

# the contract's shipped coverage
PER_MARKET_BOOKS = ("pinnacle", "bet365", "betmgm", "betrivers", "bovada", "underdog", "kalshi",
                    "novig", "fanatics", "caesars", "betr", "fliff")
GAME_LINE_BOOKS = ("fanduel", "draftkings", "bwin", "unibet", "pmu", "betclic")
COVERAGE = {**{b: PER_MARKET for b in PER_MARKET_BOOKS}, **{b: GAME_LINE for b in GAME_LINE_BOOKS}}

BASE = Quote(
    sport_key="basketball_nba", event_id="ev1", home_team="Lakers", away_team="Warriors",
    commence_time_ms=1_747_000_000_000, bookmaker="pinnacle", market_key="h2h", outcome="home",
    price=-110, point=None, player=None, observed_at_ms=1_000,
)


def q(price: int, *, t: int = 1_000, **kw: Any) -> Quote:
    return dataclasses.replace(BASE, price=price, observed_at_ms=t, **kw)


def run(prices: list[int], coverage: dict[str, str] | None = None, **kw: Any) -> list[Drop]:
    det = DropDetector(COVERAGE if coverage is None else coverage)
    return det.observe_all(q(p, t=1_000 * i, **kw) for i, p in enumerate(prices))


@pytest.mark.parametrize(
    ("prices", "moves"),
    [
        ([-110], []),  # the first price only sets the baseline
        ([-110, -110], []),  # no change
        ([-110, -120], [(-110, -120, -10, "toward_favorite")]),
        ([-105, 105], [(-105, 105, 10, "toward_dog")]),  # across even money
        ([100, -100], []),  # same price: delta 0, no drop
        ([-100, 100, -100], []),
        ([150, 130], [(150, 130, -20, "toward_favorite")]),
        ([100, 110], [(100, 110, 10, "toward_dog")]),
        # tick to tick: each price is the next baseline, not the first
        ([-110, -115, -120], [(-110, -115, -5, "toward_favorite"), (-115, -120, -5, "toward_favorite")]),
        ([-110, -130, -110], [(-110, -130, -20, "toward_favorite"), (-130, -110, 20, "toward_dog")]),
        ([-110, -110, -125], [(-110, -125, -15, "toward_favorite")]),
    ],
)
def test_drop_rules(prices: list[int], moves: list[tuple[int, int, int, str]]) -> None:
    drops = run(prices)
    assert [(d.prev, d.new, d.delta, d.direction) for d in drops] == moves
    for d in drops:
        assert d.delta_cents == abs(d.delta)


def test_every_change_is_reported_threshold_is_downstream() -> None:
    # a slow 5 + 5 drift gives two 5-cent drops; a threshold-10 filter then shows neither
    drops = run([-110, -115, -120])
    assert [d.delta_cents for d in drops] == [5, 5]


def test_drop_carries_the_new_quote_and_elapsed_time() -> None:
    det = DropDetector(COVERAGE)
    assert det.observe(q(-110, t=10_000)) is None
    d = det.observe(q(-125, t=14_200))
    assert d is not None
    assert d.quote.price == -125 and d.quote.observed_at_ms == 14_200
    assert d.elapsed_ms == 4_200


def test_elapsed_never_negative_for_out_of_order_quotes() -> None:
    det = DropDetector()
    det.observe(q(-110, t=5_000))
    d = det.observe(q(-120, t=4_000))
    assert d is not None and d.elapsed_ms == 0


@pytest.mark.parametrize(
    ("field", "a", "b"),
    [
        ("event_id", "ev1", "ev2"),
        ("bookmaker", "pinnacle", "bet365"),
        ("market_key", "h2h", "spreads"),
        ("outcome", "home", "away"),
        ("player", None, "LeBron James"),
    ],
)
def test_key_parts_are_independent_baselines(field: str, a: Any, b: Any) -> None:
    det = DropDetector(COVERAGE)
    assert det.observe(q(-110, **{field: a})) is None
    assert det.observe(q(-130, **{field: b})) is None  # a different key: baseline only
    d = det.observe(q(-120, **{field: a}))
    assert d is not None and (d.prev, d.new) == (-110, -120)


@pytest.mark.parametrize(
    ("market", "outcome", "p1", "p2"),
    [("spreads", "home", -1.5, -2.5), ("totals", "over", 220.5, 221.5), ("player_points", "over", 24.5, 25.5)],
)
def test_point_change_is_a_new_key_not_a_drop(market: str, outcome: str, p1: float, p2: float) -> None:
    det = DropDetector(COVERAGE)
    player = "LeBron James" if market.startswith("player_") else None
    assert det.observe(q(-110, market_key=market, outcome=outcome, point=p1, player=player)) is None
    assert det.observe(q(-140, market_key=market, outcome=outcome, point=p2, player=player)) is None
    # back at the first point: compared with that point's own baseline
    d = det.observe(q(-120, market_key=market, outcome=outcome, point=p1, player=player))
    assert d is not None and (d.prev, d.new, d.delta) == (-110, -120, -10)


MARKETS = [
    ("h2h", "home", None, None),
    ("h2h", "draw", None, None),
    ("spreads", "away", 3.5, None),
    ("totals", "under", 47.5, None),
    ("player_points", "over", 24.5, "LeBron James"),
    ("batter_hits", "under", 1.5, "Shohei Ohtani"),
]


@pytest.mark.parametrize("book", (*PER_MARKET_BOOKS, "brand_new_book"))
@pytest.mark.parametrize(("market", "outcome", "point", "player"), MARKETS)
def test_per_market_and_unknown_books_fire_every_market(
    book: str, market: str, outcome: str, point: float | None, player: str | None
) -> None:
    drops = run([-110, -130], bookmaker=book, market_key=market, outcome=outcome, point=point, player=player)
    assert [(d.prev, d.new) for d in drops] == [(-110, -130)]
    assert drops[0].quote.market_key == market


@pytest.mark.parametrize("book", GAME_LINE_BOOKS)
@pytest.mark.parametrize(("market", "outcome", "point", "player"), MARKETS)
def test_game_line_books_fire_h2h_only(
    book: str, market: str, outcome: str, point: float | None, player: str | None
) -> None:
    drops = run([-110, -130], bookmaker=book, market_key=market, outcome=outcome, point=point, player=player)
    assert len(drops) == (1 if market == "h2h" else 0)


def test_unknown_book_with_empty_coverage_is_per_market() -> None:
    assert len(run([-110, -130], coverage={}, market_key="totals", outcome="over", point=200.5)) == 1


def test_set_coverage_switches_a_book() -> None:
    det = DropDetector()
    spread: dict[str, Any] = {"market_key": "spreads", "outcome": "home", "point": -3.5}
    det.set_coverage("pinnacle", GAME_LINE)
    det.observe(q(-110, **spread))
    assert det.observe(q(-130, **spread)) is None
    det.set_coverage("pinnacle", PER_MARKET)
    det.observe(q(-110, **spread))
    assert det.observe(q(-130, **spread)) is not None


def test_game_line_spreads_keep_no_baseline() -> None:
    det = DropDetector(COVERAGE)
    det.observe(q(-110, bookmaker="fanduel", market_key="totals", outcome="over", point=210.5))
    assert len(det) == 0
    det.observe(q(-110, bookmaker="fanduel"))
    assert len(det) == 1


def test_forget_event_resets_baselines() -> None:
    det = DropDetector(COVERAGE)
    det.observe(q(-110))
    det.observe(q(-110, event_id="ev2"))
    det.forget_event("ev1")
    assert len(det) == 1
    assert det.observe(q(-150)) is None  # ev1 starts again from a baseline
    assert det.observe(q(-150, event_id="ev2")) is not None


def test_observe_all_keeps_order_and_skips_non_drops() -> None:
    det = DropDetector(COVERAGE)
    quotes = [q(-110), q(150, outcome="away"), q(-120), q(150, outcome="away"), q(140, outcome="away")]
    assert [(d.quote.outcome, d.delta) for d in det.observe_all(quotes)] == [("home", -10), ("away", -10)]


_american = st.one_of(st.integers(-5000, -100), st.integers(100, 5000))


@settings(database=None)  # no .hypothesis/ directory in the repo
@given(st.lists(st.tuples(st.sampled_from(["home", "away", "draw"]), _american), min_size=1, max_size=60))
def test_deltas_of_a_key_sum_to_the_net_move(ticks: list[tuple[str, int]]) -> None:
    det = DropDetector(COVERAGE)
    drops = det.observe_all(q(p, t=1_000 * i, outcome=o) for i, (o, p) in enumerate(ticks))
    for outcome in {o for o, _ in ticks}:
        prices = [p for o, p in ticks if o == outcome]
        mine = [d for d in drops if d.quote.outcome == outcome]
        # only moves after the baseline count: they telescope to last - first
        assert sum(d.delta for d in mine) == to_cents(prices[-1]) - to_cents(prices[0])
        moves = sum(1 for a, b in itertools.pairwise(prices) if to_cents(a) != to_cents(b))
        assert len(mine) == moves
    for d in drops:
        assert d.direction == ("toward_favorite" if d.delta < 0 else "toward_dog")
        assert d.delta == to_cents(d.new) - to_cents(d.prev) != 0

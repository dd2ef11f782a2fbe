"""SteamDetector (issue 15.3): several books moving one outcome the same way inside a window.
Table cases, then property tests: the order of arrival, a book that moves twice, moves across
a suspension."""

from __future__ import annotations

import dataclasses
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.drops import DropDetector
from gateway.core.model import Drop, Quote
from gateway.core.steam import SteamDetector

BASE = Quote("basketball_nba", "ev1", "Lakers", "Warriors", 1_747_000_000_000, "pinnacle", "h2h", "home",
             -110, None, None, 0)


def drop(book: str, delta: int, at_s: float, *, after: bool = False, outcome: str = "home",
         point: float | None = None) -> Drop:
    prev = -110
    cents = prev + 100 + delta
    new = cents - 100 if cents < 0 else cents + 100
    q = dataclasses.replace(BASE, bookmaker=book, price=new, observed_at_ms=int(at_s * 1000), outcome=outcome,
                            point=point)
    return Drop(q, prev, new, delta, "toward_favorite" if delta < 0 else "toward_dog", 0, after)


def run(drops: list[Drop], **kw: int) -> list[object]:
    det = SteamDetector(**kw)
    return [s for d in drops if (s := det.observe(d)) is not None]


def test_three_books_same_way_within_the_window_is_one_steam() -> None:
    steams = run([drop("pinnacle", -15, 0), drop("bet365", -10, 5), drop("betmgm", -20, 30)])
    assert len(steams) == 1
    s = steams[0]
    assert s.books == ("pinnacle", "bet365", "betmgm")  # type: ignore[attr-defined]
    assert s.first_mover == "pinnacle" and s.spread_ms == 30_000  # type: ignore[attr-defined]
    assert s.direction == "toward_favorite" and s.min_cents == 10  # type: ignore[attr-defined]


def test_not_enough_books_small_moves_other_way_or_too_far_apart() -> None:
    assert run([drop("pinnacle", -15, 0), drop("bet365", -10, 5)]) == []  # two books
    assert run([drop("pinnacle", -15, 0), drop("bet365", -5, 5), drop("betmgm", -20, 6)]) == []  # 5 < 10
    assert run([drop("pinnacle", -15, 0), drop("bet365", 15, 5), drop("betmgm", -20, 6)]) == []  # other way
    assert run([drop("pinnacle", -15, 0), drop("bet365", -15, 40), drop("betmgm", -20, 61)]) == []  # 61 s
    assert run([drop("pinnacle", -15, 0), drop("bet365", -15, 1), drop("betmgm", -15, 2, outcome="away")]) == []


def test_settings() -> None:
    moves = [drop("pinnacle", -15, 0), drop("bet365", -10, 5), drop("betmgm", -20, 30)]
    assert run(moves, books=4) == []
    assert run(moves, threshold=15) == []
    assert run(moves, window_ms=20_000) == []
    assert len(run(moves, books=2)) == 1


def test_one_steam_per_episode_and_a_new_one_after_a_quiet_window() -> None:
    first = [drop(b, -10, i) for i, b in enumerate(("pinnacle", "bet365", "betmgm", "caesars", "bovada"))]
    later = [drop(b, -10, 200 + i) for i, b in enumerate(("pinnacle", "bet365", "betmgm"))]
    steams = run([*first, *later])
    assert len(steams) == 2
    assert steams[0].books == ("pinnacle", "bet365", "betmgm")  # type: ignore[attr-defined]
    # the other direction is another episode
    assert len(run([*first, *(drop(b, 10, 10 + i) for i, b in enumerate(("pinnacle", "bet365", "betmgm")))])) == 2


def test_a_point_does_not_split_an_outcome() -> None:
    steams = run([drop("pinnacle", -15, 0, point=-3.5), drop("bet365", -10, 5, point=-4.0),
                  drop("betmgm", -20, 6, point=-3.5)])
    assert len(steams) == 1


BOOK_SIGNS = {"pinnacle": -1, "bet365": -1, "betmgm": 1, "caesars": -1, "bovada": 1}
# each book moves one way only: a book that turns round inside a window is the case where the
# time order matters by design (it steamed, then reversed), tested on its own below
moves_strategy = st.lists(
    st.tuples(st.sampled_from(sorted(BOOK_SIGNS)), st.integers(1, 40), st.integers(0, 110)).map(
        lambda m: (m[0], m[1] * BOOK_SIGNS[m[0]], m[2])),
    min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.permutations([("pinnacle", -15, 0), ("bet365", -10, 7), ("betmgm", -20, 31)]))
def test_order_of_arrival_does_not_change_the_steam(order: list[tuple[str, int, int]]) -> None:
    steams = run([drop(b, d, t) for b, d, t in order])
    assert len(steams) == 1
    s = steams[0]
    assert s.books == ("pinnacle", "bet365", "betmgm")  # type: ignore[attr-defined]
    assert s.first_mover == "pinnacle" and s.spread_ms == 31_000  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(moves_strategy, st.randoms(use_true_random=False))
def test_any_arrival_order_fires_iff_time_order_does(moves: list[tuple[str, int, int]], rnd: object) -> None:
    """Whether an outcome steams at all does not depend on the order its moves arrive in, as
    long as none is older than the window behind the newest (those are too late anyway)."""
    by_time = sorted(moves, key=lambda m: m[2])
    shuffled = list(moves)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    in_order = run([drop(b, d, t) for b, d, t in by_time])
    mixed = run([drop(b, d, t) for b, d, t in shuffled])
    assert bool(in_order) == bool(mixed)
    for s in [*in_order, *mixed]:
        books = s.books  # type: ignore[attr-defined]
        assert len(books) == len(set(books)) >= 3  # a book counts once
        assert s.spread_ms <= 60_000  # type: ignore[attr-defined]
        assert all(abs(m.delta) >= 10 for m in s.moves)  # type: ignore[attr-defined]
        assert s.first_mover == s.moves[0].bookmaker  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 6), st.integers(0, 50))
def test_a_book_that_moves_twice_counts_once(times: int, gap: int) -> None:
    moves = [drop("pinnacle", -10, i * gap / 10) for i in range(times)] + [drop("bet365", -10, 1)]
    assert run(moves) == []  # two books, however often one of them moved
    steams = run([*moves, drop("betmgm", -10, 2)])
    assert len(steams) == 1 and steams[0].books.count("pinnacle") == 1  # type: ignore[attr-defined]


def test_a_book_that_moved_back_drops_out() -> None:
    assert run([drop("pinnacle", -15, 0), drop("pinnacle", 15, 3), drop("bet365", -10, 5),
                drop("betmgm", -20, 6)]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(("pinnacle", "bet365", "betmgm", "caesars")), min_size=1, max_size=8),
       st.integers(-40, -10))
def test_moves_across_a_suspension_are_not_steam(books: list[str], delta: int) -> None:
    """Every book reopening after a suspension at a moved price is a reaction to the game,
    not steam; the moves before the suspension still count with later ones."""
    reopening = [drop(b, delta, i, after=True) for i, b in enumerate(books)]
    assert run(reopening) == []
    before = [drop("pinnacle", -15, 0), drop("bet365", -15, 1)]
    assert run([*before, *reopening[:1]]) == []
    assert len(run([*before, *reopening, drop("fanatics", -15, 20)])) == 1


def test_through_the_drop_detector_a_suspension_reopening_never_steams() -> None:
    """End to end in the core: suspend, reopen 30 cents away at four books: drops with
    after_suspension, no steam; a plain 30-cent move at the same four books is steam."""
    det, steam = DropDetector(), SteamDetector()
    out = []
    for t, (status, price) in enumerate([("open", -110), ("suspended", -110), ("open", -140)]):
        for b in ("pinnacle", "bet365", "betmgm", "caesars"):
            d = det.observe(dataclasses.replace(BASE, bookmaker=b, price=price, status=status, observed_at_ms=t))
            if d is not None:
                assert d.after_suspension
                out.append(steam.observe(d))
    assert len(out) == 4 and not any(out)
    for b in ("pinnacle", "bet365", "betmgm", "caesars"):
        d = det.observe(dataclasses.replace(BASE, bookmaker=b, price=-170, observed_at_ms=10))
        assert d is not None and not d.after_suspension
        out.append(steam.observe(d))
    assert sum(1 for s in out if s is not None) == 1


def test_permutations_of_four_books_one_steam_ordered_by_time() -> None:
    """With more books than needed, the steam is reported when enough have arrived: its books
    depend on what arrived first, but it is always one steam, its moves in time order."""
    moves = [("pinnacle", -15, 0), ("bet365", -10, 7), ("betmgm", -20, 31), ("caesars", -12, 40)]
    for order in itertools.permutations(moves):
        steams = run([drop(b, d, t) for b, d, t in order])
        assert len(steams) == 1
        times = [m.at_ms for m in steams[0].moves]  # type: ignore[attr-defined]
        assert times == sorted(times) and steams[0].first_mover == steams[0].moves[0].bookmaker  # type: ignore[attr-defined]

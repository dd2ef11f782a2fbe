"""The board: current prices grouped into the contract's OddsRows (CONTRACT.md 5, Odds)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.core.board import Board, row_key
from gateway.core.model import Quote

COMMENCE_MS = 1_747_000_000_000  # 2025-05-11T21:46:40Z
BASE = Quote(
    sport_key="basketball_nba", event_id="ev1", home_team="Lakers", away_team="Warriors",
    commence_time_ms=COMMENCE_MS, bookmaker="pinnacle", market_key="h2h", outcome="home",
    price=-110, point=None, player=None, observed_at_ms=1_000,
)
GAME_KEY = ("ev1", "pinnacle", "game", "", "")
PROP_KEY = ("ev1", "pinnacle", "prop", "LeBron James", "player_points")

GAME_FIELDS = ("home_ml", "away_ml", "draw_ml", "home_spread", "away_spread", "home_spread_price",
               "away_spread_price", "total", "over_price", "under_price")
PROP_FIELDS = ("player", "market_key", "market", "line", "over_price", "under_price")
COMMON = ("kind", "sport_key", "event_id", "bookmaker", "home_team", "away_team", "commence_time",
          "last_update", "available", "action", "status", "suspended_markets")


def q(market: str = "h2h", outcome: str = "home", price: int = -110, point: float | None = None,
      t: int = 1_000, **kw: Any) -> Quote:
    return dataclasses.replace(
        BASE, market_key=market, outcome=outcome, price=price, point=point, observed_at_ms=t, **kw
    )


def prop(outcome: str, price: int, line: float = 24.5, t: int = 1_000) -> Quote:
    return q("player_points", outcome, price, line, t, player="LeBron James")


@pytest.mark.parametrize(
    ("quote", "key"),
    [
        (q(), GAME_KEY),
        (q("spreads", "away", -105, 3.5), GAME_KEY),
        (q("totals", "over", -110, 220.5), GAME_KEY),
        (prop("over", -115), PROP_KEY),
        (q("batter_hits", "under", 120, 1.5, player="Shohei Ohtani"),
         ("ev1", "pinnacle", "prop", "Shohei Ohtani", "batter_hits")),
    ],
)
def test_row_key(quote: Quote, key: tuple[str, ...]) -> None:
    assert row_key(quote) == key


def test_full_game_row() -> None:
    b = Board()
    for quote in [
        q("h2h", "home", -150, t=1_000), q("h2h", "away", 130, t=2_000),
        q("spreads", "home", -110, -3.5, t=3_000), q("spreads", "away", -110, 3.5, t=3_000),
        q("totals", "over", -105, 221.5, t=4_000), q("totals", "under", -115, 221.5, t=2_500),
    ]:
        b.apply(quote)
    row = b.row(GAME_KEY)
    assert row == {
        "kind": "game", "sport_key": "basketball_nba", "event_id": "ev1", "bookmaker": "pinnacle",
        "home_team": "Lakers", "away_team": "Warriors", "commence_time": "2025-05-11T21:46:40Z",
        "last_update": 4_000,
        "home_ml": -150, "away_ml": 130, "draw_ml": None,
        "home_spread": -3.5, "away_spread": 3.5, "home_spread_price": -110, "away_spread_price": -110,
        "total": 221.5, "over_price": -105, "under_price": -115,
        "available": True, "action": "upsert", "status": "open", "suspended_markets": [],
    }


def test_game_row_missing_prices_are_null() -> None:
    b = Board()
    b.apply(q("h2h", "home", -150))
    row = b.row(GAME_KEY)
    assert set(row) == set(COMMON) | set(GAME_FIELDS)
    assert row["home_ml"] == -150
    assert all(row[f] is None for f in GAME_FIELDS if f != "home_ml")


def test_soccer_draw_and_total_from_under_only() -> None:
    b = Board()
    b.apply(q("h2h", "draw", 240))
    b.apply(q("totals", "under", -120, 2.5))
    row = b.row(GAME_KEY)
    assert (row["draw_ml"], row["total"], row["over_price"], row["under_price"]) == (240, 2.5, None, -120)


def test_prop_row() -> None:
    b = Board()
    b.apply(prop("over", -115, t=5_000))
    b.apply(prop("under", -105, t=6_000))
    row = b.row(PROP_KEY)
    assert set(row) == set(COMMON) | set(PROP_FIELDS)
    assert {k: row[k] for k in ("kind", *PROP_FIELDS, "last_update")} == {
        "kind": "prop", "player": "LeBron James", "market_key": "player_points", "market": "Points",
        "line": 24.5, "over_price": -115, "under_price": -105, "last_update": 6_000,
    }


def test_prop_line_from_under_only() -> None:
    b = Board()
    b.apply(prop("under", 100, line=7.5))
    assert (b.row(PROP_KEY)["line"], b.row(PROP_KEY)["over_price"]) == (7.5, None)


@pytest.mark.parametrize(
    ("first", "second", "changed"),
    [
        (q(price=-110), q(price=-110, t=9_000), False),  # same price and point: no update
        (q(price=-110), q(price=-120), True),
        (q(price=100), q(price=-100), True),  # same price on the cents line, different number
        (q("spreads", "home", -110, -3.5), q("spreads", "home", -110, -4.5), True),  # point moved
        (q(), q(outcome="away"), True),  # a new cell of the same row
        (q(), q(bookmaker="fanduel"), True),  # a new row
    ],
)
def test_apply_reports_changed_rows(first: Quote, second: Quote, changed: bool) -> None:
    b = Board()
    assert b.apply(first) == row_key(first)  # a new cell is always a change
    assert b.apply(second) == (row_key(second) if changed else None)


def test_unchanged_price_still_refreshes_last_update() -> None:
    b = Board()
    b.apply(q(t=1_000))
    assert b.apply(q(t=9_000)) is None
    assert b.last_update(GAME_KEY) == 9_000 == b.row(GAME_KEY)["last_update"]


def test_point_move_replaces_the_cell() -> None:
    b = Board()
    b.apply(q("spreads", "home", -110, -3.5))
    b.apply(q("spreads", "home", -115, -4.5))
    row = b.row(GAME_KEY)
    assert (row["home_spread"], row["home_spread_price"]) == (-4.5, -115)
    assert len(list(b.quotes(GAME_KEY))) == 1


def test_events_are_recorded_from_the_first_quote() -> None:
    b = Board()
    b.apply(q())
    ev = b.events["ev1"]
    assert (ev.id, ev.sport_key, ev.home_team, ev.away_team, ev.commence_time_ms, ev.status) == (
        "ev1", "basketball_nba", "Lakers", "Warriors", COMMENCE_MS, "scheduled",
    )


def test_keys_len_and_remove_event() -> None:
    b = Board()
    b.apply(q())
    b.apply(prop("over", -110))
    b.apply(q(event_id="ev2"))
    b.apply(q(event_id="ev2", bookmaker="fanduel"))
    assert len(b) == 4
    assert set(b.row_keys()) == {GAME_KEY, PROP_KEY, ("ev2", "pinnacle", "game", "", ""),
                             ("ev2", "fanduel", "game", "", "")}
    assert sorted(b.remove_event("ev1")) == sorted([GAME_KEY, PROP_KEY])
    assert len(b) == 2 and "ev1" not in b.events and "ev2" in b.events
    assert b.remove_event("nope") == []
    with pytest.raises(KeyError):
        b.row(GAME_KEY)


def test_rows_are_per_bookmaker() -> None:
    b = Board()
    b.apply(q(price=-110))
    b.apply(q(price=-125, bookmaker="draftkings"))
    assert b.row(GAME_KEY)["home_ml"] == -110
    assert b.row(("ev1", "draftkings", "game", "", ""))["home_ml"] == -125

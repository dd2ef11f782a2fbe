"""Ingest parsing (CONTRACT.md 7): flat quotes, TOA v4 event lists, PBP rows; table-driven."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from gateway.core.model import Play, Quote
from gateway.core.parse import (
    RowError,
    parse_flat_quote,
    parse_pbp_row,
    parse_toa_events,
    play_to_row,
    quote_to_flat,
)

NOW = 1_778_612_400_000  # 2026-05-12T19:00:00Z
COMMENCE = 1_778_626_800_000  # 2026-05-12T23:00:00Z

FLAT: dict[str, Any] = {
    "sport_key": "basketball_nba", "event_id": "2026-05-12_Lakers_Warriors", "home_team": "Los Angeles Lakers",
    "away_team": "Golden State Warriors", "commence_time": "2026-05-12T23:00:00Z", "bookmaker": "pinnacle",
    "market_key": "h2h", "outcome": "home", "price": -120, "point": None, "player": None,
    "odds_format": "american", "observed_at_ms": NOW - 5,
}
EXPECTED = Quote("basketball_nba", "2026-05-12_Lakers_Warriors", "Los Angeles Lakers", "Golden State Warriors",
                 COMMENCE, "pinnacle", "h2h", "home", -120, None, None, NOW - 5)


def flat(**changes: Any) -> dict[str, Any]:
    row = dict(FLAT)
    for k, v in changes.items():
        if v is ...:
            row.pop(k)
        else:
            row[k] = v
    return row


GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("h2h", flat(), {}),
    ("commence as unix ms", flat(commence_time=COMMENCE), {}),
    ("commence with offset", flat(commence_time="2026-05-12T19:00:00-04:00"), {}),
    ("observed defaults to now", flat(observed_at_ms=...), {"observed_at_ms": NOW}),
    ("odds_format defaults to american", flat(odds_format=...), {}),
    ("decimal", flat(price=2.5, odds_format="decimal"), {"price": 150}),
    ("probability", flat(price=0.5238, odds_format="probability"), {"price": -110}),
    ("even money", flat(price=100), {"price": 100}),
    ("soccer draw", flat(sport_key="soccer_epl", outcome="draw", price=240), {"sport_key": "soccer_epl",
                                                                           "outcome": "draw", "price": 240}),
    ("spread", flat(market_key="spreads", outcome="away", point=4.5), {"market_key": "spreads", "outcome": "away",
                                                                        "point": 4.5}),
    ("total int point", flat(market_key="totals", outcome="over", point=220), {"market_key": "totals",
                                                                                "outcome": "over", "point": 220.0}),
    ("prop", flat(market_key="player_points", outcome="under", point=24.5, player="LeBron James"),
     {"market_key": "player_points", "outcome": "under", "point": 24.5, "player": "LeBron James"}),
    ("unknown fields ignored", flat(extra="x", sport_title="NBA"), {}),
    ("price as float american", flat(price=-120.0), {}),
]


@pytest.mark.parametrize(("row", "changes"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_flat_quotes(row: dict[str, Any], changes: dict[str, Any]) -> None:
    assert parse_flat_quote(row, now_ms=NOW) == dataclasses.replace(EXPECTED, **changes)


BAD: list[tuple[object, str]] = [
    (["not", "an", "object"], "row"),
    (flat(sport_key=...), "sport_key"),
    (flat(sport_key=""), "sport_key"),
    (flat(sport_key="Basketball NBA"), "sport_key"),
    (flat(sport_key=7), "sport_key"),
    (flat(event_id=...), "event_id"),
    (flat(event_id="   "), "event_id"),
    (flat(home_team=None), "home_team"),
    (flat(away_team=["x"]), "away_team"),
    (flat(away_team="Los Angeles Lakers"), "away_team"),
    (flat(commence_time=...), "commence_time"),
    (flat(commence_time="tomorrow"), "commence_time"),
    (flat(commence_time=1_778_626_800), "commence_time"),  # seconds, not ms
    (flat(commence_time=1.5e12), "commence_time"),
    (flat(commence_time=True), "commence_time"),
    (flat(bookmaker=...), "bookmaker"),
    (flat(bookmaker="Pinnacle Sports"), "bookmaker"),
    (flat(market_key=...), "market_key"),
    (flat(market_key="Player Points"), "market_key"),
    (flat(outcome=...), "outcome"),
    (flat(outcome="over"), "outcome"),  # h2h has no over
    (flat(market_key="spreads", outcome="draw", point=1.5), "outcome"),
    (flat(market_key="totals", outcome="home", point=200.5), "outcome"),
    (flat(market_key="player_points", outcome="home", point=20.5, player="A"), "outcome"),
    (flat(price=...), "price"),
    (flat(price="-110"), "price"),
    (flat(price=True), "price"),
    (flat(price=-50), "price"),
    (flat(price=-110.5), "price"),
    (flat(price=float("nan")), "price"),
    (flat(price=10**9), "price"),
    (flat(price=0.9, odds_format="decimal"), "price"),
    (flat(price=1.2, odds_format="probability"), "price"),
    (flat(odds_format="fractional"), "odds_format"),
    (flat(odds_format=1), "odds_format"),
    (flat(point=-1.5), "point"),  # h2h has no point
    (flat(market_key="spreads", outcome="home"), "point"),
    (flat(market_key="totals", outcome="over", point="220.5"), "point"),
    (flat(market_key="totals", outcome="over", point=float("inf")), "point"),
    (flat(market_key="player_points", outcome="over", point=20.5), "player"),
    (flat(market_key="player_points", outcome="over", point=20.5, player=""), "player"),
    (flat(player="LeBron James"), "player"),  # game markets have no player
    (flat(observed_at_ms="now"), "observed_at_ms"),
    (flat(observed_at_ms=1.5), "observed_at_ms"),
    (flat(observed_at_ms=1_000), "observed_at_ms"),
]


@pytest.mark.parametrize(("row", "field"), BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_flat_quotes_name_the_field(row: object, field: str) -> None:
    with pytest.raises(RowError) as info:
        parse_flat_quote(row, now_ms=NOW)
    assert str(info.value).startswith(f"{field}:"), str(info.value)


ROUND_TRIP = [
    EXPECTED,
    Quote("soccer_epl", "e", "Arsenal", "Chelsea", COMMENCE + 123, "bet365", "h2h", "draw", 250, None, None, NOW),
    Quote("basketball_nba", "e", "A", "B", COMMENCE, "fanduel", "spreads", "home", -105, -0.0 + 0.0, None, NOW),
    Quote("basketball_nba", "e", "A", "B", COMMENCE, "bovada", "totals", "under", 100, 221.5, None, NOW),
    Quote("baseball_mlb", "e", "A", "B", COMMENCE, "betmgm", "batter_hits", "over", -9900, 0.5, "Sam Q", NOW),
]


@pytest.mark.parametrize("q", ROUND_TRIP)
def test_quote_round_trip(q: Quote) -> None:
    row = quote_to_flat(q)
    assert parse_flat_quote(row, now_ms=0) == q
    assert row["odds_format"] == "american"


def test_commence_time_is_iso_for_whole_seconds() -> None:
    assert quote_to_flat(EXPECTED)["commence_time"] == "2026-05-12T23:00:00Z"


# --- The Odds API v4 -------------------------------------------------------------------------


def toa_event(**changes: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": "ev1", "sport_key": "basketball_nba", "sport_title": "NBA", "commence_time": "2026-05-12T23:00:00Z",
        "home_team": "Los Angeles Lakers", "away_team": "Golden State Warriors",
        "bookmakers": [{
            "key": "pinnacle", "title": "Pinnacle", "last_update": "2026-05-12T18:59:00Z",
            "markets": [
                {"key": "h2h", "last_update": "2026-05-12T18:59:30Z", "outcomes": [
                    {"name": "Los Angeles Lakers", "price": 1.83}, {"name": "Golden State Warriors", "price": 2.05}]},
                {"key": "spreads", "outcomes": [
                    {"name": "Los Angeles Lakers", "price": 1.91, "point": -2.5},
                    {"name": "Golden State Warriors", "price": 1.91, "point": 2.5}]},
                {"key": "totals", "outcomes": [
                    {"name": "Over", "price": -110, "point": 221.5}, {"name": "Under", "price": -110, "point": 221.5}]},
                {"key": "player_points", "outcomes": [
                    {"name": "Over", "description": "LeBron James", "price": 1.87, "point": 24.5},
                    {"name": "Under", "description": "LeBron James", "price": 1.95, "point": 24.5}]},
            ],
        }],
    }
    ev.update(changes)
    return ev


def test_toa_event_list() -> None:
    quotes, errors = parse_toa_events([toa_event()], now_ms=NOW)
    assert errors == []
    got = {(q.market_key, q.outcome): (q.price, q.point, q.player) for q in quotes}
    assert got == {
        ("h2h", "home"): (-120, None, None), ("h2h", "away"): (105, None, None),
        ("spreads", "home"): (-110, -2.5, None), ("spreads", "away"): (-110, 2.5, None),
        ("totals", "over"): (-110, 221.5, None), ("totals", "under"): (-110, 221.5, None),
        ("player_points", "over"): (-115, 24.5, "LeBron James"),
        ("player_points", "under"): (-105, 24.5, "LeBron James"),
    }
    h2h = next(q for q in quotes if q.market_key == "h2h")
    assert h2h.observed_at_ms == NOW - 30_000  # the market's last_update
    assert next(q for q in quotes if q.market_key == "spreads").observed_at_ms == NOW - 60_000  # the book's
    assert h2h.commence_time_ms == COMMENCE and h2h.bookmaker == "pinnacle"


def test_toa_american_format_and_unix_seconds() -> None:
    ev = toa_event(commence_time=COMMENCE // 1000)
    ev["bookmakers"][0]["markets"] = [{"key": "h2h", "outcomes": [
        {"name": "Los Angeles Lakers", "price": -120}, {"name": "Golden State Warriors", "price": 100}]}]
    quotes, errors = parse_toa_events([ev], now_ms=NOW, odds_format="american")
    assert errors == [] and quotes[0].commence_time_ms == COMMENCE
    assert [q.price for q in quotes] == [-120, 100]
    # a decimal price under an american request names the problem
    ev["bookmakers"][0]["markets"][0]["outcomes"][1]["price"] = 1.91
    _, errors = parse_toa_events([ev], now_ms=NOW, odds_format="american")
    assert errors == [(0, "event 0 bookmaker pinnacle market h2h outcome 'Golden State Warriors': "
                          "price: 1.91 as american: American odds must be whole numbers")]


def test_toa_draw() -> None:
    ev = toa_event(sport_key="soccer_epl", home_team="Arsenal", away_team="Chelsea")
    ev["bookmakers"][0]["markets"] = [{"key": "h2h", "outcomes": [
        {"name": "Arsenal", "price": 2.1}, {"name": "Chelsea", "price": 3.5}, {"name": "Draw", "price": 3.4}]}]
    quotes, errors = parse_toa_events([ev], now_ms=NOW)
    assert errors == [] and [q.outcome for q in quotes] == ["home", "away", "draw"]


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    ev = copy.deepcopy(toa_event())
    target: Any = ev
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return ev


M = ["bookmakers", 0, "markets"]
TOA_BAD: list[tuple[str, dict[str, Any] | object, int, str]] = [
    ("unknown team", _mutated([*M, 0, "outcomes", 0, "name"], "Foo"), 7,
     "event 1 bookmaker pinnacle market h2h outcome 'Foo': name matches neither team"),
    ("totals name", _mutated([*M, 2, "outcomes", 1, "name"], "Lakers"), 7,
     "event 1 bookmaker pinnacle market totals outcome 'Lakers': name must be Over or Under"),
    ("bad price", _mutated([*M, 1, "outcomes", 0, "price"], 0.5), 7,
     "event 1 bookmaker pinnacle market spreads outcome 'Los Angeles Lakers': price: 0.5 as decimal: "),
    ("prop without player", _mutated([*M, 3, "outcomes", 0, "description"], None), 7,
     "event 1 bookmaker pinnacle market player_points outcome 'Over': player: required"),
    ("spread without point", _mutated([*M, 1, "outcomes", 1, "point"], None), 7,
     "event 1 bookmaker pinnacle market spreads outcome 'Golden State Warriors': point: required"),
    ("event without home team", toa_event(home_team=None), 0, "event 1: home_team: required"),
    ("event commence", toa_event(commence_time="soon"), 0, "event 1: commence_time: 'soon' is not"),
    ("event not an object", "nope", 0, "event 1: event: expected an object"),
    ("bookmaker without key", _mutated(["bookmakers", 0, "key"], None), 0, "event 1 bookmaker #0: key: required"),
    ("markets not a list", _mutated([*M], {}), 0, "event 1 bookmaker pinnacle: markets: expected a list"),
    ("market without key", _mutated([*M, 0, "key"], None), 6, "event 1 bookmaker pinnacle market #0: key: required"),
    ("outcomes not a list", _mutated([*M, 2, "outcomes"], "x"), 6,
     "event 1 bookmaker pinnacle market #2: outcomes: expected a list"),
    ("outcome not an object", _mutated([*M, 2, "outcomes", 0], 5), 7,
     "event 1 bookmaker pinnacle market totals outcome 5: outcome: expected an object"),
]


@pytest.mark.parametrize(("event", "n_good", "reason"), [b[1:] for b in TOA_BAD], ids=[b[0] for b in TOA_BAD])
def test_toa_bad_rows_are_rejected_alone(event: object, n_good: int, reason: str) -> None:
    good = toa_event(id="ev0")
    quotes, errors = parse_toa_events([good, event], now_ms=NOW)
    assert len(quotes) == 8 + n_good  # the first event is untouched
    assert len(errors) == 1 and errors[0][0] == 1
    assert errors[0][1].startswith(reason), errors[0][1]


def test_toa_payload_must_be_a_list() -> None:
    with pytest.raises(RowError, match="payload"):
        parse_toa_events({"id": "x"}, now_ms=NOW)


# --- play-by-play ------------------------------------------------------------------------------

PBP: dict[str, Any] = {
    "match_id": "2026-05-12_Lakers_Warriors", "sport_key": "basketball_nba", "source": "nba_live",
    "role": "primary", "event_type": "made_3", "team_or_player_a": "Los Angeles Lakers",
    "team_or_player_b": "Golden State Warriors", "score_a": "54", "score_b": 51,
    "description": "James makes 26-foot three", "state": {"period": 2, "clock": "5:32"},
    "occurred_at_ms": NOW - 2_000, "captured_at_ms": NOW - 1_000,
}


def pbp(**changes: Any) -> dict[str, Any]:
    row = dict(PBP)
    for k, v in changes.items():
        if v is ...:
            row.pop(k)
        else:
            row[k] = v
    return row


def test_good_pbp_row() -> None:
    play = parse_pbp_row(PBP, now_ms=NOW)
    assert play == Play("2026-05-12_Lakers_Warriors", "basketball_nba", "nba_live", "primary", "made_3",
                        "Los Angeles Lakers", "Golden State Warriors", "54", "51", "James makes 26-foot three",
                        2, "5:32", NOW - 2_000, NOW - 1_000, "in_progress")


def test_pbp_defaults() -> None:
    play = parse_pbp_row(pbp(role=..., captured_at_ms=..., description=..., state=...), now_ms=NOW)
    assert (play.role, play.captured_at_ms, play.description) == ("primary", NOW, "")
    assert (play.period, play.clock, play.status) == (None, None, "in_progress")
    final = parse_pbp_row(pbp(state={"period": "5", "clock": None, "status": "final"}), now_ms=NOW)
    assert (final.period, final.status) == (5, "final")  # one type: a string of digits is its number


PBP_BAD: list[tuple[object, str]] = [
    ("row", "row"),
    (pbp(match_id=...), "match_id"),
    (pbp(sport_key="NBA!"), "sport_key"),
    (pbp(source=""), "source"),
    (pbp(role="backup"), "role"),
    (pbp(event_type=None), "event_type"),
    (pbp(team_or_player_a=3), "team_or_player_a"),
    (pbp(team_or_player_b=...), "team_or_player_b"),
    (pbp(score_a=None), "score_a"),
    (pbp(score_b=-1), "score_b"),
    (pbp(score_b=1.5), "score_b"),
    (pbp(score_a=True), "score_a"),
    (pbp(description=5), "description"),
    (pbp(state=[2, "5:32"]), "state"),
    (pbp(state={"period": 2.5}), "state.period"),
    (pbp(state={"clock": 332}), "state.clock"),
    (pbp(state={"status": ""}), "state.status"),
    (pbp(occurred_at_ms=...), "occurred_at_ms"),
    (pbp(occurred_at_ms="x"), "occurred_at_ms"),
    (pbp(captured_at_ms=NOW // 1000), "captured_at_ms"),
]


@pytest.mark.parametrize(("row", "field"), PBP_BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(PBP_BAD)])
def test_bad_pbp_rows_name_the_field(row: object, field: str) -> None:
    with pytest.raises(RowError) as info:
        parse_pbp_row(row, now_ms=NOW)
    assert str(info.value).startswith(f"{field}:"), str(info.value)


@pytest.mark.parametrize("state", [{"period": 2, "clock": "5:32", "status": "in_progress"},
                                   {"period": None, "clock": None, "status": "final"},
                                   {"period": 7, "clock": "top", "status": "in_progress"}])
def test_play_round_trip(state: dict[str, Any]) -> None:
    play = parse_pbp_row(pbp(state=state), now_ms=NOW)
    row = play_to_row(play)
    assert row["state"] == state
    assert parse_pbp_row(row, now_ms=0) == play

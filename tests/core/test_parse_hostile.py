"""Ingest parsing against hostile rows (issue 14.5, 14.8): strings the store cannot take,
unbounded numbers, and the one type of `period`. Every string field of each row kind."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from gateway.core import fields
from gateway.core.parse import RowError, parse_flat_quote, parse_pbp_row, parse_toa_events

from .test_parse import FLAT, NOW, flat, pbp, toa_event

SURROGATE = "Home \ud800"  # what json.loads makes of "Home \ud800": not encodable as UTF-8
FLAT_STRINGS = ["sport_key", "event_id", "home_team", "away_team", "commence_time", "bookmaker", "market_key",
                "outcome", "player", "odds_format"]


def _storable(value: Any) -> None:
    """What the store does with every string: encode it as UTF-8."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            _storable(k)
            _storable(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _storable(v)


def test_the_surrogate_is_what_json_makes_of_the_escape() -> None:
    assert json.loads('"Home \\ud800"') == SURROGATE
    with pytest.raises(UnicodeEncodeError):
        SURROGATE.encode("utf-8")


@pytest.mark.parametrize("name", FLAT_STRINGS)
def test_flat_quote_string_fields_refuse_lone_surrogates(name: str) -> None:
    row = flat(market_key="player_points", outcome="over", point=24.5, player="LeBron James")
    row[name] = SURROGATE if name not in ("sport_key", "bookmaker", "market_key") else "nba\ud800"
    with pytest.raises(RowError) as info:
        parse_flat_quote(row, now_ms=NOW)
    assert str(info.value).startswith(f"{name}:"), str(info.value)
    if name not in ("sport_key", "bookmaker", "market_key", "outcome", "odds_format", "commence_time"):
        assert "surrogate" in str(info.value)
    str(info.value).encode("utf-8")  # the reason itself can be sent back


TOA_STRINGS: list[tuple[list[Any], str]] = [
    (["id"], "id"), (["sport_key"], "sport_key"), (["home_team"], "home_team"), (["away_team"], "away_team"),
    (["commence_time"], "commence_time"), (["bookmakers", 0, "key"], "key"),
    (["bookmakers", 0, "last_update"], "last_update"), (["bookmakers", 0, "markets", 0, "key"], "key"),
    (["bookmakers", 0, "markets", 0, "outcomes", 0, "name"], "name"),
    (["bookmakers", 0, "markets", 3, "outcomes", 0, "description"], "player"),
]


@pytest.mark.parametrize(("path", "name"), TOA_STRINGS, ids=[".".join(map(str, p)) for p, _ in TOA_STRINGS])
def test_toa_string_fields_refuse_lone_surrogates(path: list[Any], name: str) -> None:
    bad = toa_event(id="ev1")
    target: Any = bad
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "Golden State Warriors\ud800"
    quotes, errors = parse_toa_events([toa_event(id="ev0"), bad], now_ms=NOW)
    assert errors and all(i == 1 for i, _ in errors)
    assert any(f"{name}: " in reason for _, reason in errors), errors
    assert sum(q.event_id == "ev0" for q in quotes) == 8  # the good event is kept whole
    _storable([dataclasses.astuple(q) for q in quotes])
    for _, reason in errors:
        reason.encode("utf-8")


PBP_STRINGS: list[tuple[str, dict[str, Any]]] = [
    ("match_id", {"match_id": SURROGATE}), ("sport_key", {"sport_key": "nba\ud800"}),
    ("source", {"source": SURROGATE}), ("role", {"role": SURROGATE}), ("event_type", {"event_type": SURROGATE}),
    ("team_or_player_a", {"team_or_player_a": SURROGATE}), ("team_or_player_b", {"team_or_player_b": SURROGATE}),
    ("score_a", {"score_a": "1\ud800"}), ("score_b", {"score_b": "1\ud800"}),
    ("description", {"description": SURROGATE}),
    ("state.clock", {"state": {"period": 2, "clock": "5:\ud80032"}}),
    ("state.status", {"state": {"period": 2, "status": "live\ud800"}}),
    ("state.period", {"state": {"period": "2\ud800"}}),
]


@pytest.mark.parametrize(("name", "change"), PBP_STRINGS, ids=[p[0] for p in PBP_STRINGS])
def test_pbp_string_fields_refuse_lone_surrogates(name: str, change: dict[str, Any]) -> None:
    with pytest.raises(RowError) as info:
        parse_pbp_row(pbp(**change), now_ms=NOW)
    assert str(info.value).startswith(f"{name}:"), str(info.value)
    str(info.value).encode("utf-8")


def test_a_valid_surrogate_pair_is_fine() -> None:
    row = flat(home_team=json.loads('"Lakers \\ud83c\\udfc0"'))
    assert parse_flat_quote(row, now_ms=NOW).home_team == "Lakers \U0001f3c0"


BOUNDS: list[tuple[str, dict[str, Any]]] = [
    ("score_a", {"score_a": int("9" * 4001)}),
    ("score_b", {"score_b": fields.MAX_SCORE + 1}),
    ("score_a", {"score_a": "1" * 21}),
    ("state.period", {"state": {"period": int("9" * 400)}}),
    ("state.period", {"state": {"period": fields.MAX_PERIOD + 1}}),
    ("state.period", {"state": {"period": -1}}),
    ("state.period", {"state": {"period": "Q3"}}),
    ("state.period", {"state": {"period": "\u00b2"}}),  # isdigit() but not a number int() takes
    ("state.clock", {"state": {"clock": "9" * (fields.MAX_CLOCK + 1)}}),
    ("description", {"description": "x" * (fields.MAX_DESCRIPTION + 1)}),
]


@pytest.mark.parametrize(("name", "change"), BOUNDS, ids=[f"{i}-{b[0]}" for i, b in enumerate(BOUNDS)])
def test_pbp_numbers_and_strings_are_bounded(name: str, change: dict[str, Any]) -> None:
    with pytest.raises(RowError) as info:
        parse_pbp_row(pbp(**change), now_ms=NOW)
    assert str(info.value).startswith(f"{name}:"), str(info.value)
    assert len(str(info.value)) < 300  # a huge value is not echoed back


def test_scores_and_periods_at_their_bounds_are_kept() -> None:
    play = parse_pbp_row(pbp(score_a=fields.MAX_SCORE, score_b=0, state={"period": fields.MAX_PERIOD}), now_ms=NOW)
    assert (play.score_a, play.score_b, play.period) == (str(fields.MAX_SCORE), "0", fields.MAX_PERIOD)


def test_period_is_a_number() -> None:
    assert parse_pbp_row(pbp(state={"period": 4}), now_ms=NOW).period == 4
    assert parse_pbp_row(pbp(state={"period": " 4 "}), now_ms=NOW).period == 4
    assert parse_pbp_row(pbp(state={"period": None}), now_ms=NOW).period is None


@pytest.mark.parametrize(("name", "value"), [("price", int("9" * 309)), ("price", -(10**20)), ("point", 10**400)])
def test_huge_integer_prices_and_points_are_rejected_not_overflowed(name: str, value: int) -> None:
    """math.isfinite(10**400) raises OverflowError: it was a 500 (found by the fuzz)."""
    for fmt in ("american", "decimal", "probability"):
        row = {**flat(market_key="spreads", point=1.5, odds_format=fmt), name: value}
        with pytest.raises(RowError, match=f"^{name}: "):
            parse_flat_quote(row, now_ms=NOW)


def test_flat_quote_long_strings_name_the_field() -> None:
    for name in ("event_id", "home_team", "player"):
        row = dict(FLAT, market_key="player_points", outcome="over", point=1.5, player="P")
        row[name] = "x" * (fields.MAX_TEXT + 1)
        with pytest.raises(RowError, match=f"^{name}: longer than"):
            parse_flat_quote(row, now_ms=NOW)

"""Stream params -> Filter, errors naming the param, and Filter.matches (CONTRACT.md 2, 5)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.core import catalog
from gateway.core.filters import Catalog, Filter, ParamError, Params, parse_filter, parse_sports
from gateway.core.frames import DROP, ODDS, PBP, Frame, drop_payload, odds_payload, pbp_payload
from gateway.core.model import Drop, Play, Quote

CAT = Catalog(
    sports={"basketball_nba", "baseball_mlb", "soccer_epl"},
    bookmakers={"pinnacle", "bet365", "fanduel", "draftkings"},
    markets={"h2h", "spreads", "totals", "player_points"},
)
QUOTE = Quote(
    sport_key="basketball_nba", event_id="ev1", home_team="Lakers", away_team="Warriors",
    commence_time_ms=1_747_000_000_000, bookmaker="pinnacle", market_key="h2h", outcome="home",
    price=-120, point=None, player=None, observed_at_ms=2_000,
)


def drop_frame(delta: int = -10, live: bool = False, **kw: Any) -> Frame:
    quote = dataclasses.replace(QUOTE, **kw)
    d = Drop(quote, -110, -110 + delta, delta, "toward_favorite" if delta < 0 else "toward_dog", 1_000)
    return Frame(seq=1, stream=DROP, payload=drop_payload(d, timestamp_ms=3_000), live=live)


def odds_frame(kind: str = "game", markets: tuple[str, ...] = ("h2h",), **kw: object) -> Frame:
    row = {"kind": kind, "sport_key": "basketball_nba", "event_id": "ev1", "bookmaker": "pinnacle", **kw}
    return Frame(seq=2, stream=ODDS, payload=odds_payload(row, markets, timestamp_ms=3_000))


def pbp_frame(match_id: str = "ev1") -> Frame:
    play = Play(match_id, "basketball_nba", "nba_live", "primary", "foul", "LAL", "GSW", "1", "2",
                "Foul", 1, "10:00", 1_000, 1_100)
    return Frame(seq=3, stream=PBP, payload=pbp_payload(play, seq=3))


def err(params: Params, drops: bool = True) -> ParamError:
    with pytest.raises(ParamError) as info:
        parse_filter(params, CAT, drops=drops)
    return info.value


# --- parse_filter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "param", "in_message"),
    [
        ({"threshold": ["0"]}, "threshold", "between 1 and 200"),
        ({"threshold": ["201"]}, "threshold", "201"),
        ({"threshold": ["-5"]}, "threshold", "-5"),
        ({"threshold": ["abc"]}, "threshold", "abc"),
        ({"threshold": ["10.5"]}, "threshold", "10.5"),
        ({"direction": ["up"]}, "direction", "up"),
        ({"direction": ["TOWARD_DOG"]}, "direction", "TOWARD_DOG"),
        ({"bookmakers": ["pinnacle,mybookie"]}, "bookmakers", "mybookie"),
        ({"markets": ["h2h", "player_dunks"]}, "markets", "player_dunks"),
        ({"kinds": ["game,futures"]}, "kinds", "futures"),
    ],
)
def test_parse_filter_errors_name_the_param(params: Params, param: str, in_message: str) -> None:
    e = err(params)
    assert e.param == param
    assert in_message in e.message
    assert str(e).startswith(f"{param}: ")
    assert isinstance(e, ValueError)


@pytest.mark.parametrize(
    ("text", "threshold"), [(None, 10), ("", 10), ("1", 1), ("200", 200), (" 25 ", 25), ("15", 15)]
)
def test_threshold(text: str | None, threshold: int) -> None:
    params: Params = {} if text is None else {"threshold": [text]}
    assert parse_filter(params, CAT, drops=True).threshold == threshold


def test_last_repeated_threshold_wins() -> None:
    assert parse_filter({"threshold": ["5", "30"]}, CAT, drops=True).threshold == 30


@pytest.mark.parametrize(
    ("text", "direction"),
    [(None, None), ("", None), ("both", None), ("toward_favorite", "toward_favorite"),
     ("toward_dog", "toward_dog"), ("toward_underdog", "toward_dog")],
)
def test_direction(text: str | None, direction: str | None) -> None:
    params: Params = {} if text is None else {"direction": [text]}
    f = parse_filter(params, CAT, drops=True)
    assert f.direction == direction
    assert f.describe()["direction"] == (direction or "both")


def test_drop_params_are_ignored_on_non_drop_streams() -> None:
    f = parse_filter({"threshold": ["abc"], "direction": ["up"]}, CAT)
    assert (f.threshold, f.direction) == (10, None)


@pytest.mark.parametrize(
    ("params", "kinds"),
    [({"kinds": ["game"]}, {"game"}), ({"kinds": ["props"]}, {"prop"}), ({"kinds": ["prop"]}, {"prop"}),
     ({"kinds": ["game,props"]}, {"game", "prop"}), ({"kinds": ["game", "props"]}, {"game", "prop"}),
     ({"kinds": [""]}, None), ({}, None)],
)
def test_kinds(params: Params, kinds: set[str] | None) -> None:
    assert parse_filter(params, CAT).kinds == (frozenset(kinds) if kinds is not None else None)


@pytest.mark.parametrize(
    "params",
    [
        {"markets": ["h2h,spreads"], "bookmakers": ["pinnacle,fanduel"]},
        {"markets": ["h2h", "spreads"], "bookmakers": ["pinnacle", "fanduel"]},
        {"markets": [" h2h , spreads ,"], "bookmakers": ["pinnacle", "fanduel,pinnacle"]},
    ],
)
def test_csv_and_repetition_are_the_same(params: Params) -> None:
    f = parse_filter(params, CAT)
    assert f.markets == frozenset({"h2h", "spreads"})
    assert f.bookmakers == frozenset({"pinnacle", "fanduel"})


@pytest.mark.parametrize(
    ("params", "event_ids"),
    [({}, None), ({"event_id": ["ev1"]}, {"ev1"}), ({"event_id": ["ev1,ev2"]}, {"ev1", "ev2"}),
     ({"match_id": ["m9"]}, {"m9"}), ({"event_ids": ["a", "b"]}, {"a", "b"}),
     ({"event_id": ["*"]}, None), ({"match_id": ["*"]}, None), ({"event_id": [""]}, None)],
)
def test_event_ids(params: Params, event_ids: set[str] | None) -> None:
    assert parse_filter(params, CAT).event_ids == (frozenset(event_ids) if event_ids is not None else None)


def test_empty_params_mean_no_restriction() -> None:
    assert parse_filter({}, CAT, drops=True) == Filter(drops=True)
    assert Filter(drops=True).describe() == {"event_id": None, "bookmakers": None, "markets": None, "kinds": None,
                                             "threshold": 10, "direction": "both"}


def test_describe_lists_drop_filters_only_where_drops_apply() -> None:
    """The odds and PBP streams' `connected` frame has no threshold or direction (issue 13.7)."""
    odds = parse_filter({"threshold": ["30"], "direction": ["toward_dog"]}, CAT)
    assert odds.describe() == {"event_id": None, "bookmakers": None, "markets": None, "kinds": None}
    assert "threshold" in parse_filter({}, CAT, drops=True).describe()


def test_describe_reports_the_filter_as_understood() -> None:
    f = parse_filter({"event_id": ["e2,e1"], "bookmakers": ["fanduel,bet365"], "markets": ["totals"],
                      "kinds": ["props"], "threshold": ["20"], "direction": ["toward_underdog"]}, CAT, drops=True)
    assert f.describe() == {"event_id": ["e1", "e2"], "bookmakers": ["bet365", "fanduel"], "markets": ["totals"],
                            "kinds": ["prop"], "threshold": 20, "direction": "toward_dog"}


# --- parse_sports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "sports"),
    [
        ("basketball_nba", {}, {"basketball_nba"}),
        ("all", {}, None),
        ("multi", {"sports": ["basketball_nba,soccer_epl"]}, {"basketball_nba", "soccer_epl"}),
        ("multi", {"sports": ["basketball_nba", "baseball_mlb"]}, {"basketball_nba", "baseball_mlb"}),
        ("basketball_nba", {"sports": ["soccer_epl"]}, {"soccer_epl"}),  # sports overrides the path
        ("all", {"sports": ["baseball_mlb"]}, {"baseball_mlb"}),
        ("multi", {"sports": ["all"]}, None),
        ("not_a_sport", {"sports": ["soccer_epl"]}, {"soccer_epl"}),  # the overridden path is not checked
    ],
)
def test_parse_sports(path: str, params: Params, sports: set[str] | None) -> None:
    assert parse_sports(params, path, CAT) == (frozenset(sports) if sports is not None else None)


@pytest.mark.parametrize(
    ("path", "params", "param", "in_message"),
    [
        ("multi", {}, "sports", "multi"),
        ("multi", {"sports": [""]}, "sports", "multi"),
        ("multi", {"sports": ["basketball_nba,curling_world"]}, "sports", "curling_world"),
        ("curling_world", {}, "sport_key", "curling_world"),
        ("all", {"sports": ["nope"]}, "sports", "nope"),
    ],
)
def test_parse_sports_errors(path: str, params: Params, param: str, in_message: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_sports(params, path, CAT)
    assert info.value.param == param
    assert in_message in info.value.message


# --- Filter.matches -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "frame", "expected"),
    [
        # drops: threshold and direction
        (Filter(), drop_frame(-10), True),  # default threshold 10 includes exactly 10
        (Filter(), drop_frame(-9), False),
        (Filter(threshold=1), drop_frame(1), True),
        (Filter(threshold=25), drop_frame(-20), False),
        (Filter(threshold=20), drop_frame(20), True),
        (Filter(direction="toward_favorite"), drop_frame(-10), True),
        (Filter(direction="toward_favorite"), drop_frame(10), False),
        (Filter(direction="toward_dog"), drop_frame(10), True),
        (Filter(direction="toward_dog"), drop_frame(-10), False),
        # drops: event, book, kind, market, live
        (Filter(event_ids=frozenset({"ev1"})), drop_frame(), True),
        (Filter(event_ids=frozenset({"ev2"})), drop_frame(), False),
        (Filter(bookmakers=frozenset({"pinnacle", "bet365"})), drop_frame(), True),
        (Filter(bookmakers=frozenset({"fanduel"})), drop_frame(), False),
        (Filter(kinds=frozenset({"game"})), drop_frame(), True),
        (Filter(kinds=frozenset({"prop"})), drop_frame(), False),
        (Filter(kinds=frozenset({"prop"})),
         drop_frame(market_key="player_points", outcome="over", point=24.5, player="LeBron James"), True),
        (Filter(markets=frozenset({"h2h", "totals"})), drop_frame(), True),
        (Filter(markets=frozenset({"spreads"})), drop_frame(), False),
        (Filter(live_only=True), drop_frame(), False),
        (Filter(live_only=True), drop_frame(live=True), True),
        # odds: no threshold or direction, but book/kind/market/event apply
        (Filter(threshold=200, direction="toward_dog"), odds_frame(), True),
        (Filter(kinds=frozenset({"prop"})), odds_frame("game"), False),
        (Filter(kinds=frozenset({"prop"})), odds_frame("prop", ("player_points",)), True),
        (Filter(markets=frozenset({"spreads"})), odds_frame(markets=("h2h", "spreads")), True),
        (Filter(markets=frozenset({"totals"})), odds_frame(markets=("h2h",)), False),
        (Filter(markets=frozenset({"totals"})), odds_frame(markets=()), True),  # no market list: pass
        (Filter(bookmakers=frozenset({"bet365"})), odds_frame(), False),
        (Filter(event_ids=frozenset({"ev9"})), odds_frame(), False),
        # pbp: only the event (match) applies
        (Filter(bookmakers=frozenset({"bet365"}), kinds=frozenset({"prop"}), markets=frozenset({"h2h"}),
                threshold=200), pbp_frame(), True),
        (Filter(event_ids=frozenset({"ev1"})), pbp_frame("ev1"), True),
        (Filter(event_ids=frozenset({"ev1"})), pbp_frame("ev2"), False),
    ],
)
def test_matches(flt: Filter, frame: Frame, expected: bool) -> None:
    assert flt.matches(frame) is expected


def test_parsed_filter_matches_end_to_end() -> None:
    f = parse_filter({"threshold": ["15"], "direction": ["toward_favorite"], "bookmakers": ["pinnacle"],
                      "kinds": ["game"]}, CAT, drops=True)
    assert f.matches(drop_frame(-15))
    assert not f.matches(drop_frame(-14))
    assert not f.matches(drop_frame(15))
    assert not f.matches(drop_frame(-20, bookmaker="bet365"))


# --- the shipped catalog as a filter universe ---------------------------------------------


def test_shipped_catalog_validates_contract_names() -> None:
    shipped = Catalog(sports=catalog.SPORT_KEYS, bookmakers=catalog.BOOK_TITLES, markets=catalog.MARKETS)
    books = ",".join(catalog.BOOK_TITLES)
    f = parse_filter({"bookmakers": [books], "markets": ["h2h,spreads,totals,player_points,batter_hits"]}, shipped)
    assert f.bookmakers is not None and len(f.bookmakers) == 18
    assert parse_sports({"sports": ["americanfootball_nfl,soccer_epl,golf_masters_tournament_winner"]}, "multi",
                        shipped) == frozenset({"americanfootball_nfl", "soccer_epl", "golf_masters_tournament_winner"})
    assert err_with(shipped, {"bookmakers": ["betfair_ex_eu"]}).param == "bookmakers"


def test_shipped_catalog_shape() -> None:
    keys = [s.key for s in catalog.SPORTS]
    assert len(keys) == len(set(keys)) >= 60
    assert all(s.has_outrights for s in catalog.SPORTS if s.key.startswith("golf_") or s.key.endswith("_winner"))
    assert not catalog.SPORTS_BY_KEY["basketball_nba"].has_outrights
    assert len(catalog.PROP_MARKETS) == len(set(catalog.PROP_MARKETS))
    assert not set(catalog.PROP_MARKETS) & {"h2h", "spreads", "totals"}
    assert (catalog.book_title("fanduel"), catalog.book_title("betmgm"), catalog.book_title("my_new_book")) == (
        "FanDuel", "BetMGM", "My New Book")


def err_with(cat: Catalog, params: Params) -> ParamError:
    with pytest.raises(ParamError) as info:
        parse_filter(params, cat)
    return info.value

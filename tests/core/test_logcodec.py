"""The stream-log codec: every frame the writer makes comes back with the same JSON text."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import logcodec
from gateway.core.board import Board
from gateway.core.frames import DROP, ODDS, PBP, drop_payload, dumps, odds_payload, pbp_payload, with_id
from gateway.core.model import Drop, Play, Quote
from gateway.core.sources import StatusChange, status_payload

MS = 1_778_612_400_000
QUOTE = Quote("basketball_nba", "2026-05-12_Lakers_Warriors", "Los Angeles Lakers", "Golden State Warriors",
              MS + 3_600_000, "pinnacle", "h2h", "home", -120, None, None, MS - 250)
PLAY = Play("m1", "basketball_nba", "nba_live", "primary", "made_3", "Lakers", "Warriors", "10", "8",
            "Curry makes 3-pt jump shot", 2, "05:12", MS - 900, MS - 40)


class Dictionary:
    """An in-memory `log_names`."""

    def __init__(self) -> None:
        self.codes: dict[Hashable, int] = {}
        self.values: dict[int, Any] = {}

    def code(self, value: Hashable) -> int:
        if value not in self.codes:
            self.codes[value] = len(self.codes) + 1
            self.values[self.codes[value]] = value
        return self.codes[value]

    def name(self, code: int) -> Any:
        return self.values[code]


def round_trip(payload: dict[str, Any], stream: str, *, ms: int = MS, live: bool = False) -> bytes:
    """Encode, decode, and check the payload, its key order and its JSON text all come back."""
    names = Dictionary()
    body = logcodec.encode(payload, stream=stream, seq=payload["id"], ms=ms, live=live, code=names.code)
    assert body is not None, payload
    assert logcodec.layout_of(body)[1] is live
    back, text = logcodec.decode(body, seq=payload["id"], ms=ms, name=names.name)
    assert back == payload
    assert text == dumps(payload)  # byte for byte: same keys, order, number forms
    return body


def drop(q: Quote = QUOTE, prev: int = -110, new: int = -120, elapsed: int = 4_200) -> dict[str, Any]:
    delta = (new + 100 if new < 0 else new - 100) - (prev + 100 if prev < 0 else prev - 100)
    d = Drop(dataclasses.replace(q, price=new), prev, new, delta, "toward_favorite" if delta < 0 else "toward_dog",
             elapsed)
    return with_id(drop_payload(d, timestamp_ms=MS), 41)


@pytest.mark.parametrize(("market", "outcome", "point", "player"), [
    ("h2h", "home", None, None), ("h2h", "draw", None, None), ("spreads", "away", 3.5, None),
    ("totals", "over", 220.5, None), ("totals", "under", -0.0, None), ("spreads", "home", -0.25, None),
    ("player_points", "over", 24.5, "LeBron James"), ("player_points", "under", 1.3, None),
])
def test_drops_round_trip(market: str, outcome: str, point: float | None, player: str | None) -> None:
    q = dataclasses.replace(QUOTE, market_key=market, outcome=outcome, point=point, player=player)
    for prev, new in ((-110, -120), (100, -100), (-100, 105), (150, 1_000_000), (-1_000_000, 100)):
        round_trip(drop(q, prev, new), DROP, live=True)


def board_rows() -> tuple[Board, list[tuple[Any, ...]]]:
    board = Board()
    game = [("h2h", "home", -150, None), ("h2h", "away", 130, None), ("spreads", "home", -110, -3.5),
            ("spreads", "away", -110, 3.5), ("totals", "over", -105, 221.5), ("totals", "under", -115, 221.5)]
    for market, outcome, price, point in game:
        board.apply(dataclasses.replace(QUOTE, market_key=market, outcome=outcome, price=price, point=point))
    for outcome, price in (("over", -120), ("under", 100)):
        board.apply(dataclasses.replace(QUOTE, market_key="player_rebounds", outcome=outcome, price=price, point=8.5,
                                        player="Draymond Green"))
    board.apply(dataclasses.replace(QUOTE, market_key="player_assists", outcome="over", price=-100, point=0.1,
                                    player="Stephen Curry"))  # no under yet: its price is null
    return board, list(board.row_keys())


def test_odds_rows_round_trip() -> None:
    board, keys = board_rows()
    game = next(k for k in keys if k[2] == "game")
    for markets in [("h2h",), ("spreads", "totals"), ("h2h", "spreads", "totals"), ()]:
        round_trip(with_id(odds_payload(board.row(game), markets, timestamp_ms=MS), 7), ODDS)
    for key in keys:
        if key[2] == "prop":
            round_trip(with_id(odds_payload(board.row(key), (key[4],), timestamp_ms=MS), 8), ODDS, live=True)
    partial = Board()  # a game row with only a moneyline: nulls everywhere else
    partial.apply(QUOTE)
    round_trip(with_id(odds_payload(partial.row(next(partial.row_keys())), ("h2h",), timestamp_ms=MS), 9), ODDS)


@pytest.mark.parametrize("period", [2, 0, -1, "OT", "", None])
@pytest.mark.parametrize("clock", ["05:12", None, "PT11:40.00"])
def test_plays_round_trip(period: int | str | None, clock: str | None) -> None:
    play = dataclasses.replace(PLAY, period=period, clock=clock, description="Jokić — “and one” \\ \" é 🏀")
    round_trip(pbp_payload(play, seq=12), PBP, live=True)
    round_trip(pbp_payload(dataclasses.replace(play, status="final", occurred_at_ms=0), seq=13), PBP)


@pytest.mark.parametrize("change", [
    StatusChange("source_promoted", "basketball_nba", "m1", "nba_backup", "nba_live", "primary_stale"),
    StatusChange("source_promoted", "basketball_nba", "m1", "nba_backup", None, "no_primary"),
    StatusChange("source_restored", "basketball_nba", "m1", "nba_live", "nba_backup", "primary_recovered"),
])
def test_pbp_status_frames_round_trip(change: StatusChange) -> None:
    round_trip(with_id(status_payload(change, timestamp_ms=MS), 99), PBP, live=True)


def test_bodies_are_small() -> None:
    board, keys = board_rows()
    game = next(k for k in keys if k[2] == "game")
    assert len(round_trip(drop(), DROP)) <= 14  # vs ~640 bytes of JSON
    assert len(round_trip(with_id(odds_payload(board.row(game), ("h2h",), timestamp_ms=MS), 7), ODDS)) <= 22


@pytest.mark.parametrize("change", [
    lambda p: p.update(extra=1),  # a field no layout knows
    lambda p: p.update(id=42),  # not the row's id
    lambda p: p.update(timestamp=MS + 1),  # not the row's time
    lambda p: p.update(delta_cents=9),  # derived values that do not derive
    lambda p: p.update(market="Money Line"),
    lambda p: p.update(prev=-50, prior_price=-50),  # not an American price
    lambda p: p.update(new=True),
    lambda p: p.update(point=float("nan")),
    lambda p: p.update(bookmaker=None),
    lambda p: p.pop("elapsed_ms"),
])
def test_what_no_layout_fits_is_not_encoded(change: Any) -> None:
    p = drop()
    change(p)
    assert logcodec.encode(p, stream=DROP, seq=41, ms=MS, live=False, code=Dictionary().code) is None
    assert logcodec.encode(drop(), stream=ODDS, seq=41, ms=MS, live=False, code=Dictionary().code) is None


def test_raw_bodies_keep_the_text() -> None:
    text = '{"type":"odds_drop","odd":"\ud800 lone surrogate","id":5}'
    body = logcodec.encode_raw(text, live=True)
    assert logcodec.layout_of(body) == (logcodec.RAW, True)
    assert logcodec.decode(body, seq=5, ms=MS, name=Dictionary().name) == (None, text)


def test_varints_and_topics() -> None:
    for n in (0, 1, 127, 128, 300, 2**35, 2**70):
        out = bytearray()
        logcodec._put(out, n)
        assert logcodec.varints(bytes(out)) == [n]
    assert [logcodec._unzig(logcodec._zig(n)) for n in (0, -1, 1, -2**40, 2**40)] == [0, -1, 1, -2**40, 2**40]
    assert {logcodec.topic(3, s) for s in (ODDS, DROP, PBP)} == {13, 14, 15}


prices = st.one_of(st.integers(100, 1_000_000), st.integers(-1_000_000, -100))
texts = st.text(st.characters(blacklist_categories=()), max_size=12)  # surrogates included
points = st.one_of(st.none(), st.integers(-400, 400).map(lambda n: n / 4),
                   st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
times = st.integers(-(2**45), 2**45)


@settings(max_examples=300, deadline=None)
@given(market=st.sampled_from(["h2h", "spreads", "totals", "player_points", "batter_hits"]), prev=prices,
       new=prices, point=points, player=st.one_of(st.none(), texts), names=st.tuples(texts, texts, texts, texts),
       observed=times, elapsed=st.integers(0, 2**40), ms=times)
def test_any_drop_round_trips(market: str, prev: int, new: int, point: float | None, player: str | None,
                              names: tuple[str, str, str, str], observed: int, elapsed: int, ms: int) -> None:
    if prev + 100 * (prev < 0) - 100 * (prev > 0) == new + 100 * (new < 0) - 100 * (new > 0):
        return  # not a move
    q = dataclasses.replace(QUOTE, event_id=names[0], home_team=names[1], away_team=names[2], bookmaker=names[3],
                            market_key=market, point=point, player=player, observed_at_ms=observed)
    p = drop(q, prev, new, elapsed)
    p["timestamp"] = ms
    round_trip(p, DROP, ms=ms)


@settings(max_examples=200, deadline=None)
@given(cells=st.lists(st.tuples(st.sampled_from([("h2h", "home"), ("h2h", "away"), ("h2h", "draw"),
                                                  ("spreads", "home"), ("spreads", "away"), ("totals", "over"),
                                                  ("totals", "under")]), prices, points), min_size=1, max_size=7),
       markets=st.sets(st.sampled_from(["h2h", "spreads", "totals"])), team=texts, ms=times)
def test_any_game_row_round_trips(cells: list[tuple[tuple[str, str], int, float | None]], markets: set[str],
                                  team: str, ms: int) -> None:
    board = Board()
    for (market, outcome), price, point in cells:
        board.apply(dataclasses.replace(QUOTE, home_team=team, market_key=market, outcome=outcome, price=price,
                                        point=None if market == "h2h" else point))
    payload = with_id(odds_payload(board.row(next(board.row_keys())), tuple(sorted(markets)), timestamp_ms=ms), 3)
    round_trip(payload, ODDS, ms=ms)


@settings(max_examples=200, deadline=None)
@given(strings=st.lists(texts, min_size=11, max_size=11),
       period=st.one_of(st.none(), st.integers(-(2**40), 2**40), texts), clock=st.one_of(st.none(), texts),
       occurred=times, captured=times, ms=times)
def test_any_play_round_trips(strings: list[str], period: int | str | None, clock: str | None, occurred: int,
                              captured: int, ms: int) -> None:
    s = strings
    play = Play(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], period=period, clock=clock,
                occurred_at_ms=occurred, captured_at_ms=captured, status=s[10])
    round_trip(pbp_payload(play, seq=2**33), PBP, ms=ms)

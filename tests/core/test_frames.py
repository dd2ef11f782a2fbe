"""Frames: payload shapes and exact SSE bytes (CONTRACT.md 3, 5)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gateway.core.frames import (
    DROP,
    FRAME_TYPE,
    ODDS,
    PBP,
    STEAM,
    Frame,
    drop_payload,
    dumps,
    odds_payload,
    pbp_payload,
    sse_comment,
    sse_retry,
    with_id,
)
from gateway.core.model import Drop, Play, Quote

QUOTE = Quote(
    sport_key="basketball_nba", event_id="ev1", home_team="Lakers", away_team="Warriors",
    commence_time_ms=1_747_000_000_000, bookmaker="pinnacle", market_key="h2h", outcome="home",
    price=-120, point=None, player=None, observed_at_ms=1_747_000_100_000,
)
PLAY = Play(
    match_id="m1", sport_key="basketball_nba", source="nba_live", role="primary", event_type="3pt",
    team_or_player_a="LAL", team_or_player_b="GSW", score_a="10", score_b="8",
    description="Curry makes 3-pt jump shot", period=2, clock="05:12",
    occurred_at_ms=1_000, captured_at_ms=1_200,
)
DROP_FIELDS = {"type", "sport_key", "event_id", "bookmaker", "kind", "market_key", "market", "side",
               "outcome", "prev", "new", "delta", "prior_price", "new_price", "delta_cents", "direction",
               "home_team", "away_team", "commence_time", "last_update", "timestamp", "elapsed_ms"}


def drop(market: str = "h2h", outcome: str = "home", prev: int = -110, new: int = -120,
         point: float | None = None, player: str | None = None) -> Drop:
    quote = dataclasses.replace(QUOTE, market_key=market, outcome=outcome, price=new, point=point, player=player)
    delta = (new + 100 if new < 0 else new - 100) - (prev + 100 if prev < 0 else prev - 100)
    return Drop(quote, prev, new, delta, "toward_favorite" if delta < 0 else "toward_dog", 4_200)


# --- SSE bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seq", "named", "expected"),
    [
        (7, False, b'id: 7\ndata: {"type":"odds_update","n":1}\n\n'),
        (7, True, b'id: 7\nevent: odds_update\ndata: {"type":"odds_update","n":1}\n\n'),
        (None, False, b'data: {"type":"odds_update","n":1}\n\n'),
        (None, True, b'event: odds_update\ndata: {"type":"odds_update","n":1}\n\n'),
        (0, False, b'id: 0\ndata: {"type":"odds_update","n":1}\n\n'),  # seq 0 still has an id
    ],
)
def test_sse_bytes(seq: int | None, named: bool, expected: bytes) -> None:
    frame = Frame(seq=seq, stream=None, payload={"type": "odds_update", "n": 1})
    assert frame.sse(named) == expected


@pytest.mark.parametrize(
    ("payload", "named", "expected"),
    [
        ({"type": "heartbeat", "timestamp": 5, "connections": 2}, False,
         b'data: {"type":"heartbeat","timestamp":5,"connections":2}\n\n'),
        ({"type": "heartbeat", "timestamp": 5, "connections": 2}, True,
         b'event: heartbeat\ndata: {"type":"heartbeat","timestamp":5,"connections":2}\n\n'),
        ({"type": "stream_status", "status": "reset"}, False,
         b'data: {"type":"stream_status","status":"reset"}\n\n'),
    ],
)
def test_control_frames_have_no_id(payload: dict[str, object], named: bool, expected: bytes) -> None:
    frame = Frame.control(payload)
    assert frame.seq is None and frame.stream is None
    assert frame.sse(named) == expected


def test_sse_is_one_data_line_and_utf8() -> None:
    frame = Frame(seq=3, stream=None, payload={"type": "x", "text": "a\nb\r\nc", "team": "Atlético"})
    raw = frame.sse(False)
    assert raw == 'id: 3\ndata: {"type":"x","text":"a\\nb\\r\\nc","team":"Atlético"}\n\n'.encode()
    assert raw.count(b"\n") == 3 and b"\r" not in raw


def test_sse_is_encoded_once() -> None:
    frame = Frame(seq=1, stream=None, payload={"type": "x"})
    assert frame.sse(True) is frame.sse(True)
    assert frame.sse(False) is frame.sse(False)


def test_prebuilt_text_is_used_verbatim() -> None:
    frame = Frame(seq=9, stream=None, payload={"type": "x"}, text='{"type": "x", "replayed": true}')
    assert frame.sse(False) == b'id: 9\ndata: {"type": "x", "replayed": true}\n\n'


def test_comment_retry_and_dumps() -> None:
    assert sse_comment("keepalive") == b": keepalive\n\n"
    assert sse_retry(3000) == b"retry: 3000\n\n"
    assert dumps({"a": [1, None], "b": "é"}) == '{"a":[1,null],"b":"é"}'
    assert FRAME_TYPE == {ODDS: "odds_update", DROP: "odds_drop", PBP: "pbp_event", STEAM: "steam"}


# --- odds_drop ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("market", "outcome", "point", "side"),
    [
        ("h2h", "home", None, "h2h_home"),
        ("h2h", "away", None, "h2h_away"),
        ("h2h", "draw", None, "h2h_draw"),
        ("spreads", "home", -3.5, "spread_home"),
        ("spreads", "away", 3.5, "spread_away"),
        ("totals", "over", 221.5, "total_over"),
        ("totals", "under", 221.5, "total_under"),
    ],
)
def test_game_drop_side(market: str, outcome: str, point: float | None, side: str) -> None:
    p = drop(market, outcome, point=point)
    payload = drop_payload(p, timestamp_ms=99)
    assert (payload["side"], payload["outcome"], payload["kind"]) == (side, outcome, "game")
    assert set(payload) >= DROP_FIELDS
    assert "player" not in payload and "line" not in payload


@pytest.mark.parametrize(("outcome", "market_key", "market"), [("over", "player_points", "Points"),
                                                               ("under", "player_pass_yds", "Pass Yds"),
                                                               ("over", "batter_home_runs", "Home Runs")])
def test_prop_drop_side_player_and_line(outcome: str, market_key: str, market: str) -> None:
    payload = drop_payload(drop(market_key, outcome, point=24.5, player="LeBron James"), timestamp_ms=99)
    assert set(payload) >= DROP_FIELDS | {"player", "line"}
    assert (payload["side"], payload["outcome"], payload["kind"]) == (outcome, outcome, "prop")
    assert (payload["player"], payload["line"]) == ("LeBron James", 24.5)
    assert (payload["market_key"], payload["market"]) == (market_key, market)


def test_drop_payload_values() -> None:
    payload = drop_payload(drop(prev=-110, new=-120), timestamp_ms=1_747_000_100_050)
    assert {k: payload[k] for k in DROP_FIELDS} == {
        "type": "odds_drop", "sport_key": "basketball_nba", "event_id": "ev1", "bookmaker": "pinnacle",
        "kind": "game", "market_key": "h2h", "market": "Moneyline", "side": "h2h_home", "outcome": "home",
        "prev": -110, "new": -120, "delta": -10, "prior_price": -110, "new_price": -120,
        "delta_cents": 10, "direction": "toward_favorite", "home_team": "Lakers", "away_team": "Warriors",
        "commence_time": "2025-05-11T21:46:40Z", "last_update": 1_747_000_100_000,
        "timestamp": 1_747_000_100_050, "elapsed_ms": 4_200,
    }


@pytest.mark.parametrize(("prev", "new", "delta", "cents", "dir_"),
                         [(-105, 105, 10, 10, "toward_dog"), (150, 130, -20, 20, "toward_favorite")])
def test_drop_payload_delta_fields(prev: int, new: int, delta: int, cents: int, dir_: str) -> None:
    payload = drop_payload(drop(prev=prev, new=new), timestamp_ms=0)
    assert (payload["delta"], payload["delta_cents"], payload["direction"]) == (delta, cents, dir_)


def test_drop_frame_fields_for_filters() -> None:
    payload = with_id(drop_payload(drop("totals", "over", point=221.5), timestamp_ms=1), 42)
    frame = Frame(seq=42, stream=DROP, payload=payload, live=True)
    assert (frame.type, frame.sport_key, frame.event_id, frame.bookmaker) == (
        "odds_drop", "basketball_nba", "ev1", "pinnacle")
    assert (frame.kinds, frame.markets, frame.delta_cents, frame.direction, frame.live) == (
        ("game",), ("totals",), 10, "toward_favorite", True)
    assert json.loads(frame.json) == payload and payload["id"] == 42
    assert frame.sse(False).startswith(b"id: 42\ndata: {")
    assert b"event:" not in frame.sse(False)


# --- odds_update and pbp_event ------------------------------------------------------------


def test_odds_payload_and_frame() -> None:
    row = {"kind": "prop", "sport_key": "basketball_nba", "event_id": "ev1", "bookmaker": "bet365",
           "player": "LeBron James", "market_key": "player_points"}
    payload = odds_payload(row, ("player_points",), timestamp_ms=123)
    assert payload == {"type": "odds_update", "sport_key": "basketball_nba", "timestamp": 123, "count": 1,
                       "data": [row], "markets": ["player_points"], "coalesced": False}
    frame = Frame(seq=5, stream=ODDS, payload=payload)
    assert (frame.type, frame.event_id, frame.bookmaker, frame.kinds, frame.markets) == (
        "odds_update", "ev1", "bet365", ("prop",), ("player_points",))
    assert frame.delta_cents == 0 and frame.direction is None


def test_pbp_payload_and_frame() -> None:
    payload = pbp_payload(PLAY, seq=17)
    assert payload == {
        "type": "pbp_event", "id": 17, "match_id": "m1", "sport_key": "basketball_nba", "source": "nba_live",
        "role": "primary", "event_type": "3pt", "team_or_player_a": "LAL", "team_or_player_b": "GSW",
        "score_a": "10", "score_b": "8", "description": "Curry makes 3-pt jump shot",
        "state": {"period": 2, "clock": "05:12", "status": "in_progress"},
        "occurred_at_ms": 1_000, "captured_at_ms": 1_200,
    }
    frame = Frame(seq=17, stream=PBP, payload=payload)
    assert (frame.event_id, frame.bookmaker, frame.kinds, frame.markets) == ("m1", None, (), ())
    assert frame.sse(True).startswith(b"id: 17\nevent: pbp_event\ndata: {")

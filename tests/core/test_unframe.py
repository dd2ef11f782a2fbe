"""Frames back into ingest rows (what `gateway record` writes): OddsRow -> flat quotes."""

from __future__ import annotations

import dataclasses

from gateway.core.board import Board, row_key
from gateway.core.frames import odds_payload, pbp_payload
from gateway.core.model import Play, Quote
from gateway.core.parse import parse_flat_quote, parse_pbp_row
from gateway.core.unframe import odds_frame_quotes, odds_row_quotes, pbp_frame_row

COMMENCE_MS = 1_747_000_000_000  # whole seconds: the row's ISO commence time is exact
BASE = Quote(sport_key="soccer_epl", event_id="ev1", home_team="Arsenal", away_team="Chelsea",
             commence_time_ms=COMMENCE_MS, bookmaker="pinnacle", market_key="h2h", outcome="home",
             price=-110, point=None, player=None, observed_at_ms=COMMENCE_MS - 60_000)


def q(market: str, outcome: str, price: int, point: float | None = None, player: str | None = None) -> Quote:
    return dataclasses.replace(BASE, market_key=market, outcome=outcome, price=price, point=point, player=player)


GAME = [q("h2h", "home", -110), q("h2h", "away", 250), q("h2h", "draw", 240),
        q("spreads", "home", -105, -1.5), q("spreads", "away", -115, 1.5),
        q("totals", "over", -120, 2.5), q("totals", "under", 100, 2.5)]
PROP = [q("player_shots", "over", -130, 1.5, "Saka"), q("player_shots", "under", 110, 1.5, "Saka")]


def board_of(quotes: list[Quote]) -> Board:
    board = Board()
    for x in quotes:
        board.apply(x)
    return board


def parsed(rows: list[dict[str, object]]) -> set[Quote]:
    return {parse_flat_quote(r, now_ms=0) for r in rows}


def test_a_game_row_gives_back_its_quotes() -> None:
    row = board_of(GAME).row(row_key(GAME[0]))
    assert parsed(odds_row_quotes(row)) == set(GAME)
    assert parsed(odds_row_quotes(row, ["spreads"])) == set(GAME[3:5])


def test_a_prop_row_gives_back_its_quotes() -> None:
    row = board_of(PROP).row(row_key(PROP[0]))
    assert parsed(odds_row_quotes(row)) == set(PROP)
    assert odds_row_quotes(row, ["h2h"]) == []


def test_an_update_frame_carries_only_its_changed_markets() -> None:
    board = board_of(GAME)
    moved = dataclasses.replace(GAME[0], price=-125, observed_at_ms=COMMENCE_MS - 1_000)
    board.apply(moved)
    frame = odds_payload(board.row(row_key(moved)), ("h2h",), timestamp_ms=COMMENCE_MS)
    got = parsed(odds_frame_quotes(frame))
    # the row has one last_update: every quote of the changed market takes it
    assert got == {dataclasses.replace(x, observed_at_ms=COMMENCE_MS - 1_000) for x in [moved, *GAME[1:3]]}
    snapshot = {"type": "initial_state", "data": [board.row(row_key(moved))]}
    assert len(odds_frame_quotes(snapshot)) == len(GAME)  # a snapshot: every market
    assert odds_frame_quotes({"type": "odds_update", "data": "junk"}) == []


def test_a_pbp_frame_is_its_row() -> None:
    play = Play(match_id="m1", sport_key="soccer_epl", source="feed", role="primary", event_type="goal",
                team_or_player_a="Arsenal", team_or_player_b="Chelsea", score_a="1", score_b="0",
                description="Saka scores", period=1, clock="23:10", occurred_at_ms=COMMENCE_MS,
                captured_at_ms=COMMENCE_MS + 200, status="in_progress")
    assert parse_pbp_row(pbp_frame_row(pbp_payload(play, seq=42)), now_ms=0) == play


def test_market_state_comes_back_per_market() -> None:
    """Issue 15: a row's suspended markets are recorded suspended (closed when the row is)."""
    from gateway.core.unframe import odds_row_quotes as quotes_of

    row = {"kind": "game", "sport_key": "s", "event_id": "e", "home_team": "H", "away_team": "A",
           "commence_time": "2026-05-12T22:30:00Z", "bookmaker": "b", "last_update": 1, "home_ml": -110,
           "away_ml": 100, "home_spread": -3.5, "away_spread": 3.5, "home_spread_price": -110,
           "away_spread_price": -110, "status": "suspended", "suspended_markets": ["h2h"]}
    got = {(q["market_key"], q.get("status", "open")) for q in quotes_of(row)}
    assert got == {("h2h", "suspended"), ("spreads", "open")}
    closed = {q.get("status") for q in quotes_of({**row, "status": "closed", "suspended_markets": ["h2h", "spreads"]})}
    assert closed == {"closed"}

"""Pure pieces of the cluster (gateway/cluster/records.py): entries, board rows, frames -> state."""

from __future__ import annotations

import json
import sys

import pytest

from gateway.cluster.records import (
    entry_topic,
    live_state_of,
    live_value,
    load_board,
    pack_entry,
    quote_field,
    quote_value,
    row_quotes,
    seq_of,
    unpack_entry,
)
from gateway.core.board import Board
from gateway.core.frames import odds_payload
from gateway.core.model import Play, Quote
from gateway.core.parse import play_to_row

T0 = 1_790_000_000_000


def q(market: str, outcome: str, price: int, point: float | None = None, *, player: str | None = None,
      at: int = T0, book: str = "pinnacle") -> Quote:
    return Quote("basketball_nba", "e1", "Home", "Away", T0 + 3_600_000, book, market, outcome, price, point, player,
                 at)


@pytest.mark.parametrize(("topic", "ms", "body"), [(5, T0, b"\x04\x01"), (0, 0, b""), (2**20, 2**45, b"\xff" * 40)])
def test_entries_round_trip(topic: int, ms: int, body: bytes) -> None:
    value = pack_entry(topic, ms, body)
    assert unpack_entry(value) == (topic, ms, body)
    assert entry_topic(value) == topic


def test_entry_ids() -> None:
    assert seq_of(b"123-0") == 123
    assert seq_of("7-0") == 7


def _row(board: Board, quotes: list[Quote]) -> dict[str, object]:
    key = None
    for x in quotes:
        key = board.apply(x) or key
    assert key is not None
    return board.row(key)


@pytest.mark.parametrize("quotes", [
    [q("h2h", "home", -120), q("h2h", "away", 105), q("spreads", "home", -110, -3.5), q("spreads", "away", -110, 3.5),
     q("totals", "over", -105, 221.5), q("totals", "under", -115, 221.5)],
    [q("h2h", "home", -120), q("h2h", "away", 105), q("h2h", "draw", 250)],
    [q("player_points", "over", -115, 24.5, player="LeBron James"),
     q("player_points", "under", -105, 24.5, player="LeBron James")],
])
def test_a_row_rebuilds_the_writer_s_cells(quotes: list[Quote]) -> None:
    """An edge applying the odds_update rows ends with the writer's board (one time per row)."""
    writer, edge = Board(), Board()
    row = _row(writer, quotes)
    for x in row_quotes(json.loads(json.dumps(row)), edge):
        edge.apply(x)
    key = next(iter(writer.row_keys()))
    assert edge.row(key) == writer.row(key)
    assert {k: (v.price, v.point) for k, v in edge.cells(key).items()} == \
        {k: (v.price, v.point) for k, v in writer.cells(key).items()}


def test_only_cells_that_moved_are_applied() -> None:
    writer, edge = Board(), Board()
    first = _row(writer, [q("h2h", "home", -120), q("h2h", "away", 105)])
    for x in row_quotes(first, edge):
        edge.apply(x)
    later = _row(writer, [q("h2h", "home", -130, at=T0 + 5000)])
    moved = row_quotes(later, edge)
    assert [(x.outcome, x.price, x.observed_at_ms) for x in moved] == [("home", -130, T0 + 5000)]
    for x in moved:
        edge.apply(x)
    key = next(iter(edge.row_keys()))
    assert edge.cells(key)[("h2h", "away")].observed_at_ms == T0  # unchanged cells keep their time
    assert edge.row(key) == writer.row(key)


def test_board_from_the_mirrored_tables() -> None:
    quotes = {quote_field(r).encode(): quote_value(r).encode() for r in [
        ("e1", "pinnacle", "h2h", "home", "", None, -120, T0),
        ("e1", "pinnacle", "totals", "over", "", 221.5, -105, T0),
        ("e1", "fanduel", "player_points", "over", "Ann", 24.5, 110, T0 + 1)]}
    events = {b"e1": json.dumps(["basketball_nba", "Home", "Away", T0 + 3_600_000, T0]).encode()}
    board = Board()
    load_board(board, quotes, events)
    assert len(board) == 2  # the game row (h2h, totals) and the prop row
    assert board.events["e1"].home_team == "Home"
    prop = board.row(("e1", "fanduel", "prop", "Ann", "player_points"))
    assert (prop["over_price"], prop["line"], prop["player"]) == (110, 24.5, "Ann")


def test_live_state_from_a_pbp_frame_is_the_stored_row() -> None:
    play = Play(match_id="m1", sport_key="basketball_nba", source="nba_live", role="primary", event_type="made_3pt",
                team_or_player_a="Home", team_or_player_b="Away", score_a="10", score_b="7", description="3PT",
                period=2, clock="05:12", status="in_progress", occurred_at_ms=T0, captured_at_ms=T0 + 10)
    payload = {"type": "pbp_event", "id": 9, **play_to_row(play)}
    row = live_state_of(json.loads(json.dumps(payload)), T0 + 50)
    # the writer's live_state row (writer._add_play), column for column
    assert row == ("m1", "basketball_nba", "Home", "Away", "10", "7", "2", "05:12", "in_progress", "nba_live", "3PT",
                   T0 + 50)
    assert tuple(json.loads(live_value(row))) == row


def test_odds_payload_row_is_what_row_quotes_reads() -> None:
    board = Board()
    row = _row(board, [q("h2h", "home", -120)])
    payload = odds_payload(row, ("h2h",), timestamp_ms=T0)
    assert row_quotes(payload["data"][0], Board())[0].price == -120


def test_records_is_pure() -> None:
    """records.py is the cluster's pure part: the standard library and gateway.core only."""
    from pathlib import Path

    from tests.test_layering import imports

    path = Path(__file__).resolve().parents[2] / "gateway" / "cluster" / "records.py"
    found = imports(path)
    assert found
    for _line, level, module in found:
        assert level in (0, 2), module
        assert (level == 2 and module.startswith("core")) or (level == 0 and module.split(".")[0] in
                                                                 sys.stdlib_module_names), module

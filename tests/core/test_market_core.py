"""Issue 15 in the pure core: market state on the board and in drops, its stream-log layouts,
status frames, conflation, odds formats on frames, line history and CLV, stream filters."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.core import logcodec
from gateway.core.board import Board, row_key
from gateway.core.conflate import Conflator, conflate
from gateway.core.drops import DropDetector
from gateway.core.filters import Catalog, ParamError, parse_filter
from gateway.core.frames import DROP, ODDS, STEAM, Frame, drop_payload, market_status_payload, odds_payload, with_id
from gateway.core.history import Series, closing_price, clv, series_json
from gateway.core.market_state import StatusChanges, unlisted
from gateway.core.model import Drop, Quote
from gateway.core.parse import parse_flat_quote, quote_to_flat

from .test_logcodec import MS, QUOTE, Dictionary, drop, round_trip

CATALOG = Catalog(sports={"basketball_nba"}, bookmakers={"pinnacle", "bet365"}, markets={"h2h", "spreads"})


def q(price: int = -110, **kw: Any) -> Quote:
    return dataclasses.replace(QUOTE, price=price, **kw)


def test_board_rows_carry_market_state() -> None:
    b = Board()
    for x in (q(-110), q(100, outcome="away"), q(-110, market_key="spreads", point=-3.5),
              q(-110, market_key="spreads", outcome="away", point=3.5)):
        b.apply(x)
    key = row_key(QUOTE)
    assert (b.row(key)["status"], b.row(key)["available"]) == ("open", True)
    assert b.apply(q(-110, status="suspended")) == key  # a state change is a row change
    row = b.row(key)
    assert (row["status"], row["suspended_markets"], row["available"], row["home_ml"]) == (
        "suspended", ["h2h"], True, -110)
    for x in (q(100, outcome="away", status="closed"), q(-110, status="closed"),
              q(-110, market_key="spreads", point=-3.5, status="closed"),
              q(-110, market_key="spreads", outcome="away", point=3.5, status="closed")):
        b.apply(x)
    assert (b.row(key)["status"], b.row(key)["available"]) == ("closed", False)


def test_suspension_is_not_a_drop_and_the_reopening_compares_with_before() -> None:
    det = DropDetector()
    assert det.observe(q(-110)) is None
    assert det.observe(q(-140, status="suspended")) is None  # a suspended price moves nothing
    d = det.observe(q(-130))
    assert d is not None and (d.prev, d.new, d.after_suspension) == (-110, -130, True)
    d = det.observe(q(-135))
    assert d is not None and not d.after_suspension
    det.observe(q(-135, status="suspended"))
    assert det.observe(q(-135)) is None  # reopened at the same price: no drop


def test_new_layouts_round_trip_byte_for_byte() -> None:
    b = Board()
    b.apply(q(-110))
    b.apply(q(-120, status="suspended", market_key="spreads", point=-3.5))
    row = b.row(row_key(QUOTE))
    body = round_trip(with_id(odds_payload(row, ("h2h", "spreads"), timestamp_ms=MS), 7), ODDS)
    assert logcodec.layout_of(body)[0] == logcodec.L_GAME2
    prop = q(-115, market_key="player_points", outcome="over", point=24.5, player="LeBron James", status="closed")
    b.apply(prop)
    body = round_trip(with_id(odds_payload(b.row(row_key(prop)), ("player_points",), timestamp_ms=MS), 8), ODDS)
    assert logcodec.layout_of(body)[0] == logcodec.L_PROP2
    d = drop()
    d["after_suspension"] = True
    d["id"] = d.pop("id")  # after_suspension comes before id, as drop_payload puts it
    assert logcodec.layout_of(round_trip(d, DROP))[0] == logcodec.L_DROP_AS
    ev = b.events[QUOTE.event_id]
    for outcome, reason in ((None, "goal"), ("home", None)):
        status = with_id(market_status_payload(ev, "pinnacle", "h2h", outcome, "suspended", reason, timestamp_ms=MS), 9)
        assert len(round_trip(status, ODDS)) < 12
    real = Drop(q(-130), -110, -130, -20, "toward_favorite", 5, True)
    payload = with_id(drop_payload(real, timestamp_ms=MS), 10)
    assert list(payload)[-2:] == ["after_suspension", "id"] and round_trip(payload, DROP)


def test_steam_frames_are_stored_as_json_and_come_back() -> None:
    names = Dictionary()
    payload = {"type": "steam", "sport_key": "basketball_nba", "id": 3}
    assert logcodec.encode(payload, stream=STEAM, seq=3, ms=MS, live=False, code=names.code) is None
    assert logcodec.STREAM_OF[logcodec.topic(5, STEAM) & 3] == STEAM


def test_status_changes_one_frame_per_market_or_per_outcome() -> None:
    b = Board()
    b.apply(q(-110))
    b.apply(q(100, outcome="away"))
    c = StatusChanges()
    for x in (q(-110, status="suspended", reason="goal"), q(100, outcome="away", status="suspended")):
        c.note(x, "open")
        b.apply(x)
    assert [(m, o, s) for m, o, s, _ in c.frames(b)] == [("h2h", None, "suspended")]
    c = StatusChanges()
    x = q(-110)
    c.note(x, "suspended")
    b.apply(x)
    assert [(m, o, s) for m, o, s, _ in c.frames(b)] == [("h2h", "home", "open")]
    c = StatusChanges()  # suspended and reopened in one batch: nothing to say
    c.note(q(-110, status="suspended"), "open")
    c.note(q(-110), "open")
    assert list(c.frames(b)) == []


def test_unlisted_markets_are_suspended_then_closed_after_the_event() -> None:
    last = [q(-110), q(100, outcome="away"), q(-110, market_key="spreads", point=-3.5)]
    listed = {(QUOTE.event_id, "pinnacle", "h2h", None)}
    gone = unlisted(last, listed, now_ms=MS, live_window_ms=4 * 3_600_000)
    assert [(x.market_key, x.status, x.reason, x.price) for x in gone] == [("spreads", "suspended", "not_listed", -110)]
    late = unlisted(last, set(), now_ms=QUOTE.commence_time_ms + 5 * 3_600_000, live_window_ms=4 * 3_600_000)
    assert {x.status for x in late} == {"closed"}


def test_flat_quote_status_round_trip() -> None:
    row = {**quote_to_flat(QUOTE), "status": "suspended", "price": None, "point": None, "reason": "var"}
    parsed = parse_flat_quote(row, now_ms=MS)
    assert (parsed.status, parsed.price, parsed.reason) == ("suspended", 0, "var")
    assert parse_flat_quote(quote_to_flat(parsed), now_ms=MS) == parsed


def _frame(seq: int, book: str, price: int, kind: str = "odds_update") -> Frame:
    b = Board()
    x = q(price, bookmaker=book)
    b.apply(x)
    if kind == "odds_update":
        payload = odds_payload(b.row(row_key(x)), ("h2h",), timestamp_ms=MS)
        return Frame(seq=seq, stream=ODDS, payload=with_id(payload, seq))
    d = Drop(x, -110, price, -10, "toward_favorite", 0)
    return Frame(seq=seq, stream=DROP, payload=with_id(drop_payload(d, timestamp_ms=MS), seq))


def test_conflation_keeps_the_latest_per_row_and_every_drop_in_id_order() -> None:
    frames = [_frame(1, "pinnacle", -110), _frame(2, "bet365", -110), _frame(3, "pinnacle", -120),
              _frame(4, "pinnacle", -120, "odds_drop"), _frame(5, "pinnacle", -130)]
    out = conflate(frames)
    assert [f.seq for f in out] == [2, 4, 5]
    c = Conflator()
    c.add(frames[:3])
    assert [f.seq for f in c.peek()] == [2, 3] and len(c) == 2
    c.add([frames[0]])  # an older frame of a row never replaces a newer one
    assert [f.seq for f in c.take()] == [2, 3] and not c


def test_frames_in_other_odds_formats() -> None:
    f = _frame(1, "pinnacle", -150)
    dec, prob = f.as_format("decimal"), f.as_format("probability")
    assert dec is f.as_format("decimal") and f.as_format("american") is f
    assert '"home_ml":1.67' in dec.json and '"home_ml":0.6' in prob.json and dec.seq == 1
    d = _frame(2, "pinnacle", -120, "odds_drop").as_format("decimal")
    assert (d.delta_cents, '"prev":1.91' in d.json, '"delta":-10' in d.json) == (10, True, True)


def test_history_series_open_current_close_and_clv() -> None:
    changes = [(1_000, -110), (2_000, 0), (3_000, -120), (9_000, -150), (9_500, 1)]
    s = Series("pinnacle", "h2h", "home", None, None, changes)
    out = series_json(s, commence_ms=5_000, now_ms=10_000, from_ms=2_500, to_ms=9_000, odds_format="american")
    assert (out["open"]["price"], out["close"]["price"], out["current"]) == (-110, -120, {"t": 9_500, "price": None,
                                                                                        "status": "closed"})
    assert [c["price"] for c in out["changes"]] == [-120, -150]
    before = series_json(s, commence_ms=5_000, now_ms=4_000, from_ms=0, to_ms=9_999, odds_format="decimal")
    assert before["close"] is None and before["open"]["price"] == 1.91
    moved = Series("pinnacle", "spreads", "home", None, -4.0, [(4_000, -105)])
    same = Series("pinnacle", "spreads", "home", None, -3.5, [(1_000, -110)])
    found = closing_price([same, moved], bookmaker="pinnacle", market_key="spreads", outcome="home", player=None,
                          point=-3.5, commence_ms=5_000)
    assert found is not None and found[0] is same
    found = closing_price([same, moved], bookmaker="pinnacle", market_key="spreads", outcome="home", player=None,
                          point=-2.5, commence_ms=5_000)
    assert found is not None and found[0] is moved  # the latest line when the bet's line has no close
    v = clv(150, 130)
    assert v["clv_cents"] == 20 and v["clv_probability"] == pytest.approx(0.4348 - 0.4, abs=1e-4)


@pytest.mark.parametrize(("params", "param"), [
    ({"kinds": ["steam"]}, "kinds"),  # not on the odds stream
    ({"oddsFormat": ["fractional"]}, "oddsFormat"),
    ({"conflate_ms": ["5"]}, "conflate_ms"),  # not taken here
])
def test_filter_errors_name_the_parameter(params: dict[str, list[str]], param: str) -> None:
    with pytest.raises(ParamError) as exc:
        parse_filter(params, CATALOG)
    assert exc.value.param == param


def test_drop_stream_steam_modes() -> None:
    assert parse_filter({}, CATALOG, drops=True).drop_streams == (DROP,)
    assert parse_filter({"kinds": ["steam"]}, CATALOG, drops=True).drop_streams == (STEAM,)
    mixed = parse_filter({"kinds": ["prop,steam"]}, CATALOG, drops=True)
    assert mixed.drop_streams == (DROP, STEAM) and mixed.describe()["kinds"] == ["prop", "steam"]
    assert parse_filter({"conflate_ms": ["250"]}, CATALOG, conflate=True).conflate_ms == 250

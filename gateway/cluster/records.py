"""What the cluster keeps in Redis, as bytes and back, and what an edge derives from frames.

Pure (standard library and gateway.core only; tests/test_layering.py checks it). Nothing
here talks to Redis.

- A stream entry is one stream-log row exactly as the writer's store keeps it (the compact
  body of gateway/core/logcodec.py, whose strings are codes of `log_names`), packed as
  varint(topic) varint(created ms) body, in one field. ~30-50 bytes against ~500 for the
  frame's JSON: at the shipped 48 h window that decides whether the stream fits in memory.
- The board hashes mirror the store's tables row for row (quotes, events, live_state), so
  an edge builds its board as the writer does at start (`app.load_board`).
- After its bootstrap an edge follows frames only: an odds_update's row gives the prices
  and points of its cells, a pbp_event the match's live state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..core.board import Board
from ..core.logcodec import varints
from ..core.model import Quote
from ..core.time import ms_from_iso

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# -- stream entries ---------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def pack_entry(topic: int, ms: int, body: bytes) -> bytes:
    return _varint(topic) + _varint(ms) + body


def unpack_entry(value: bytes) -> tuple[int, int, bytes]:
    """(topic, created ms, body) of a packed entry."""
    pos = 0
    out = []
    for _ in range(2):
        n = shift = 0
        while True:
            byte = value[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        out.append(n)
    return out[0], out[1], value[pos:]


def entry_topic(value: bytes) -> int:
    """The topic alone (a replay skips other sports' and streams' entries without decoding)."""
    return varints(value[:10])[0]


def entry_id(seq: int) -> str:
    return f"{seq}-0"


def seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


# -- board hashes (one field per row of the store's tables) -------------------------------------

QuoteRow = tuple[str, str, str, str, str, float | None, int, int]  # the quotes table, in column order
EventRow = tuple[str, str, str, str, int, int]  # the events table


def quote_field(r: QuoteRow) -> str:
    return _dumps([r[0], r[1], r[2], r[3], r[4]])  # event, book, market, outcome, player ("" for games)


def quote_value(r: QuoteRow) -> str:
    return _dumps([r[5], r[6], r[7]])  # point, price, observed


def event_value(r: EventRow) -> str:
    return _dumps(list(r[1:]))  # sport, home, away, commence ms, updated ms


def live_value(r: tuple[Any, ...]) -> str:
    return _dumps(list(r))  # every live_state column, match_id first


def load_board(board: Board, quotes: Mapping[bytes, bytes], events: Mapping[bytes, bytes]) -> None:
    """The board from the mirrored tables, as `app.load_board` builds it from the store."""
    evs = {k.decode(): json.loads(v) for k, v in events.items()}
    for field, value in quotes.items():
        event_id, book, market, outcome, player = json.loads(field)
        point, price, observed = json.loads(value)
        ev = evs.get(event_id)
        if ev is None:  # the writer stores an event with its first quote: cannot happen, skip
            continue
        sport, home, away, commence = ev[0], ev[1], ev[2], ev[3]
        board.apply(Quote(sport, event_id, home, away, commence, book, market, outcome, price, point,
                          player or None, observed))


def live_rows(live: Mapping[bytes, bytes]) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for value in live.values():
        row = tuple(json.loads(value))
        rows[row[0]] = row
    return rows


# -- frames -> state (an edge after its bootstrap) -------------------------------------------------

# (market, outcome, price field, point field) of a game row's cells
_GAME_CELLS = (("h2h", "home", "home_ml", None), ("h2h", "away", "away_ml", None), ("h2h", "draw", "draw_ml", None),
               ("spreads", "home", "home_spread_price", "home_spread"),
               ("spreads", "away", "away_spread_price", "away_spread"),
               ("totals", "over", "over_price", "total"), ("totals", "under", "under_price", "total"))


def row_quotes(row: Mapping[str, Any], board: Board) -> list[Quote]:
    """The quotes an odds_update's row brings to `board`: each cell whose price or point
    differs from the board's (or is new), timed at the row's `last_update`. The row carries
    one `total` and one prop `line` for both sides, and one time for the row: where over and
    under differ, or two cells of a row moved in one batch at different times, the edge's
    board shows the row's value (the writer's keeps each cell's)."""
    event_id, book, kind = row["event_id"], row["bookmaker"], row["kind"]
    commence = ms_from_iso(row["commence_time"])
    observed = int(row["last_update"])
    if kind == "game":
        cells = [(m, o, row.get(pf), row.get(pt) if pt else None) for m, o, pf, pt in _GAME_CELLS]
        player: str | None = None
    else:
        market, line, player = row["market_key"], row.get("line"), row.get("player")
        cells = [(market, "over", row.get("over_price"), line), (market, "under", row.get("under_price"), line)]
    key = (event_id, book, "game", "", "") if kind == "game" else (event_id, book, "prop", player or "", market)
    try:
        current = board.cells(key)
    except KeyError:
        current = {}
    out = []
    for market, outcome, price, point in cells:
        if price is None:
            continue
        old = current.get((market, outcome))
        if old is not None and old.price == price and old.point == point:
            continue
        out.append(Quote(row["sport_key"], event_id, row["home_team"], row["away_team"], commence, book, market,
                         outcome, int(price), point, player or None, observed))
    return out


def live_state_of(payload: Mapping[str, Any], created_ms: int) -> tuple[Any, ...]:
    """A pbp_event frame as the live_state row the writer stored with it (same columns)."""
    state = payload.get("state") or {}
    period = state.get("period")
    return (payload["match_id"], payload["sport_key"], payload.get("team_or_player_a"),
            payload.get("team_or_player_b"), payload.get("score_a"), payload.get("score_b"),
            None if period is None else str(period), state.get("clock"), state.get("status"), payload.get("source"),
            payload.get("description"), created_ms)


# -- keys ------------------------------------------------------------------------------------------

def key_value(row: Iterable[Any]) -> str:
    """An api_keys row (id, name, tier, scopes, prefix, revoked) as the mirror's value."""
    key_id, name, tier, scopes, prefix, revoked = row
    return _dumps([key_id, name, tier, scopes, prefix, bool(revoked)])


"""Stream-log records: a resumable frame's payload <-> a compact body, and back, exactly.

Pure. The store keeps what a frame is built from, not its JSON: a body of unsigned varints
(LEB128) whose layout depends on the frame type, with every repeated string (sport, book,
market, outcome, player, source...) and every event (id, sport, teams, start) replaced by an
integer code of the store's dictionary (`code` when encoding, `name` when decoding). Values
derived from others (market label, side, delta, direction, prior/new price...) are not
stored at all; the decoder recomputes them the way the frame constructors did.

`decode(encode(p)) == p`, key order included, so a replayed frame's JSON is byte for byte
the JSON live clients got. A payload that does not have exactly the shape the layouts
describe (a future field, an odd value) is stored as its JSON text (layout RAW): encoding
never loses anything, it only compacts what it recognises.

Body: varint(layout * 2 + live), then the layout's fields:
  name     code, 0 = None (codes start at 1)
  price    0 = None, else 1 + (2 * (p - 100) if p >= 100 else 2 * (-100 - p) + 1)
  point    0 = None, 1 = a float that is not a quarter (its code follows), else 2 + zigzag(4 * x)
  int      zigzag; times are stored as zigzag(t - created_ms)
  text     (PBP only) 0 = None, else 1 + length, then UTF-8 bytes
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping
from functools import lru_cache
from typing import Any

from .frames import DROP, ODDS, PBP, STEAM, dumps
from .model import GAME_MARKETS, market_label

# a code for a dictionary value: a plain string, or a tagged tuple ("e" event, "m" match, "f" float)
Code = Callable[[Hashable], int]
Name = Callable[[int], Any]

STREAM_NO = {STEAM: 0, ODDS: 1, DROP: 2, PBP: 3}
STREAM_OF = {n: s for s, n in STREAM_NO.items()}
RAW, L_DROP, L_GAME, L_PROP, L_PBP, L_STATUS = range(6)
# issue 15: a drop after a suspension; rows with their market state (status, available,
# suspended_markets: one varint of flags); market_status frames. Layouts 2 and 3 (rows before
# market state existed) are still read.
L_DROP_AS, L_GAME2, L_PROP2, L_MARKET = range(6, 10)
STATUS_NO = {"open": 0, "suspended": 1, "closed": 2}
STATUS_OF = {n: s for s, n in STATUS_NO.items()}


class Unencodable(Exception):
    """The payload is not one of the shapes the layouts describe (it is stored as JSON)."""


def topic(sport_code: int, stream: str) -> int:
    """The stream log's filter column: one integer per (sport, stream)."""
    return sport_code * 4 + STREAM_NO[stream]


# -- varints --------------------------------------------------------------------------------

def _put(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zig(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzig(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


def varints(body: bytes) -> list[int]:
    """Every varint of a body without text fields (the hot path of a replay)."""
    out: list[int] = []
    n = shift = 0
    for byte in body:
        if byte & 0x80:
            n |= (byte & 0x7F) << shift
            shift += 7
        else:
            out.append(n | (byte << shift))
            n = shift = 0
    return out


class _Reader:
    """A cursor over a body with text fields."""

    __slots__ = ("body", "pos")

    def __init__(self, body: bytes, pos: int) -> None:
        self.body, self.pos = body, pos

    def int(self) -> int:
        n = shift = 0
        body, pos = self.body, self.pos
        while True:
            byte = body[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                return n
            shift += 7

    def text(self) -> str | None:
        n = self.int()
        if n == 0:
            return None
        start, self.pos = self.pos, self.pos + n - 1
        return self.body[start:self.pos].decode("utf-8", "surrogatepass")


# -- field encoders -------------------------------------------------------------------------

def _str(v: object) -> str:
    if type(v) is not str:
        raise Unencodable
    return v


def _int(v: object) -> int:
    if type(v) is not int:
        raise Unencodable
    return v


def _price_no(p: object) -> int:
    if p is None:
        return 0
    if type(p) is not int or -100 < p < 100:
        raise Unencodable
    return 1 + (2 * (p - 100) if p >= 100 else 2 * (-100 - p) + 1)


def _price(n: int) -> int | None:
    if n == 0:
        return None
    n -= 1
    return n // 2 + 100 if not n & 1 else -100 - n // 2


def _put_point(out: bytearray, x: object, code: Code) -> None:
    if x is None:
        out.append(0)
        return
    if type(x) is not float or not math.isfinite(x):
        raise Unencodable
    q = x * 4
    if q == int(q) and abs(q) < 2**53 and (x != 0.0 or math.copysign(1.0, x) > 0):
        _put(out, 2 + _zig(int(q)))
    else:
        out.append(1)
        _put(out, code(("f", repr(x))))


def _point(v: list[int], i: int, name: Name) -> tuple[float | None, int]:
    """(point, index of the next field) from the varints at `i`."""
    n = v[i]
    if n == 0:
        return None, i + 1
    if n == 1:
        return float(name(v[i + 1])[1]), i + 2
    return _unzig(n - 2) / 4, i + 1


def _same(a: object, b: object) -> bool:
    """Equal and indistinguishable in JSON (0.0 and -0.0 are equal, not the same text)."""
    if type(a) is not type(b) or a != b:
        return False
    return type(a) is not float or math.copysign(1.0, a) == math.copysign(1.0, b)  # type: ignore[arg-type]


def _keys(d: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    if tuple(d) != keys:
        raise Unencodable


def _cents(p: int) -> int:
    return p + 100 if p < 0 else p - 100


_GAME_SIDE = {"h2h": "h2h_", "spreads": "spread_", "totals": "total_"}
_DROP_KEYS = ("type", "sport_key", "event_id", "bookmaker", "kind", "market_key", "market", "side", "outcome",
              "prev", "new", "delta", "prior_price", "new_price", "delta_cents", "direction", "point",
              "home_team", "away_team", "commence_time", "last_update", "timestamp", "elapsed_ms")
_DROP_GAME_KEYS = (*_DROP_KEYS, "id")
_DROP_PROP_KEYS = (*_DROP_KEYS, "player", "line", "id")
_DROP_GAME_AS_KEYS = (*_DROP_KEYS, "after_suspension", "id")
_DROP_PROP_AS_KEYS = (*_DROP_KEYS, "player", "line", "after_suspension", "id")
_ODDS_KEYS = ("type", "sport_key", "timestamp", "count", "data", "markets", "coalesced", "id")
_ROW_HEAD = ("kind", "sport_key", "event_id", "bookmaker", "home_team", "away_team", "commence_time", "last_update")
_GAME_VALUES = ("home_ml", "away_ml", "draw_ml", "home_spread", "away_spread", "home_spread_price",
                "away_spread_price", "total", "over_price", "under_price")
_GAME_ROW_KEYS = (*_ROW_HEAD, *_GAME_VALUES, "available", "action")
_PROP_ROW_KEYS = (*_ROW_HEAD, "player", "market_key", "market", "line", "over_price", "under_price",
                  "available", "action")
_STATE_TAIL = ("status", "suspended_markets")
_GAME_ROW_KEYS2 = (*_GAME_ROW_KEYS, *_STATE_TAIL)
_PROP_ROW_KEYS2 = (*_PROP_ROW_KEYS, *_STATE_TAIL)
_MARKET_KEYS = ("type", "sport_key", "event_id", "bookmaker", "market_key", "outcome", "status", "reason",
                "home_team", "away_team", "commence_time", "timestamp", "id")
_POINT_FIELDS = frozenset(("home_spread", "away_spread", "total"))
_PBP_KEYS = ("type", "id", "match_id", "sport_key", "source", "role", "event_type", "team_or_player_a",
             "team_or_player_b", "score_a", "score_b", "description", "state", "occurred_at_ms", "captured_at_ms")
_STATE_KEYS = ("period", "clock", "status")
_STATUS_KEYS = ("type", "status", "sport_key", "match_id", "source", "previous_source", "reason", "timestamp", "id")


def _event(d: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    return ("e", _str(d["event_id"]), _str(d["sport_key"]), _str(d["home_team"]), _str(d["away_team"]),
            _str(d["commence_time"]))


# -- encode ---------------------------------------------------------------------------------

def encode(payload: Mapping[str, Any], *, stream: str, seq: int, ms: int, live: bool, code: Code) -> bytes | None:
    """The body for a frame's payload, or None when no layout fits it exactly (store it with
    `encode_raw`). `code` may be called for a payload that turns out not to fit."""
    out = bytearray()
    try:
        if payload.get("id") != seq or type(payload.get("id")) is not int:
            raise Unencodable
        kind = payload.get("type")
        if stream == DROP and kind == "odds_drop":
            _encode_drop(out, payload, ms, live, code)
        elif stream == ODDS and kind == "odds_update":
            _encode_odds(out, payload, ms, live, code)
        elif stream == ODDS and kind == "market_status":
            _encode_market(out, payload, ms, live, code)
        elif stream == PBP and kind == "pbp_event":
            _encode_pbp(out, payload, ms, live, code)
        elif stream == PBP and kind == "stream_status":
            _encode_status(out, payload, ms, live, code)
        else:
            raise Unencodable
    except Unencodable:
        return None
    return bytes(out)


def encode_raw(text: str, *, live: bool) -> bytes:
    """The RAW body: the frame's JSON text as it was sent."""
    return bytes((RAW * 2 + live,)) + text.encode("utf-8", "surrogatepass")


def _encode_drop(out: bytearray, p: Mapping[str, Any], ms: int, live: bool, code: Code) -> None:
    market = _str(p["market_key"])
    prop = market not in GAME_MARKETS
    after = "after_suspension" in p
    if after and p["after_suspension"] is not True:
        raise Unencodable
    _keys(p, (_DROP_PROP_AS_KEYS if prop else _DROP_GAME_AS_KEYS) if after else
          (_DROP_PROP_KEYS if prop else _DROP_GAME_KEYS))
    outcome, prev, new = _str(p["outcome"]), p["prev"], p["new"]
    delta = _cents(_int(new)) - _cents(_int(prev))
    if (p["kind"] != ("prop" if prop else "game") or p["market"] != market_label(market)
            or p["side"] != (outcome if prop else _GAME_SIDE[market] + outcome)
            or not _same(p["delta"], delta) or not _same(p["prior_price"], prev) or not _same(p["new_price"], new)
            or not _same(p["delta_cents"], abs(delta))
            or p["direction"] != ("toward_favorite" if delta < 0 else "toward_dog")
            or not _same(p["timestamp"], ms) or (prop and not _same(p["line"], p["point"]))):
        raise Unencodable
    _put(out, (L_DROP_AS if after else L_DROP) * 2 + live)
    for n in (code(_event(p)), code(_str(p["bookmaker"])), code(market), code(outcome)):
        _put(out, n)
    if prop:
        player = p["player"]
        _put(out, 0 if player is None else code(_str(player)))
    _put_point(out, p["point"], code)
    _put(out, _price_no(prev))
    _put(out, _price_no(new))
    _put(out, _zig(_int(p["last_update"]) - ms))
    _put(out, _zig(_int(p["elapsed_ms"])))


def _encode_odds(out: bytearray, p: Mapping[str, Any], ms: int, live: bool, code: Code) -> None:
    _keys(p, _ODDS_KEYS)
    data, markets = p["data"], p["markets"]
    if (not _same(p["timestamp"], ms) or not _same(p["count"], 1) or p["coalesced"] is not False
            or type(data) is not list or len(data) != 1 or type(markets) is not list):
        raise Unencodable
    row = data[0]
    if type(row) is not dict or row.get("action") != "upsert":
        raise Unencodable
    kind = row.get("kind")
    state = "status" in row  # a row with its market state (layouts L_GAME2, L_PROP2)
    if state:
        _keys(row, _GAME_ROW_KEYS2 if kind == "game" else _PROP_ROW_KEYS2)
    else:
        _keys(row, _GAME_ROW_KEYS if kind == "game" else _PROP_ROW_KEYS)
        if row["available"] is not True:
            raise Unencodable
    if row["sport_key"] != p["sport_key"]:
        raise Unencodable
    last = _zig(_int(row["last_update"]) - ms)
    if kind == "game":
        mask = 0
        for m in markets:
            if m not in GAME_MARKETS:
                raise Unencodable
            mask |= 1 << GAME_MARKETS.index(m)
        if markets != [m for i, m in enumerate(GAME_MARKETS) if mask >> i & 1]:  # sorted, no repeats
            raise Unencodable
        _put(out, (L_GAME2 if state else L_GAME) * 2 + live)
        for n in (code(_event(row)), code(_str(row["bookmaker"])), mask, last):
            _put(out, n)
        if state:
            _put(out, _state_flags(row, GAME_MARKETS))
        for f in _GAME_VALUES:
            if f in _POINT_FIELDS:
                _put_point(out, row[f], code)
            else:
                _put(out, _price_no(row[f]))
    elif kind == "prop":
        market = _str(row["market_key"])
        if markets != [market] or row["market"] != market_label(market):
            raise Unencodable
        player = row["player"]
        _put(out, (L_PROP2 if state else L_PROP) * 2 + live)
        for n in (code(_event(row)), code(_str(row["bookmaker"])), 0 if player is None else code(_str(player)),
                  code(market), last):
            _put(out, n)
        if state:
            _put(out, _state_flags(row, (market,)))
        _put_point(out, row["line"], code)
        _put(out, _price_no(row["over_price"]))
        _put(out, _price_no(row["under_price"]))
    else:
        raise Unencodable


def _state_flags(row: Mapping[str, Any], markets: tuple[str, ...]) -> int:
    """status (2 bits) | available (1 bit) | which of `markets` are in suspended_markets."""
    status, available, shut = row["status"], row["available"], row["suspended_markets"]
    if status not in STATUS_NO or type(available) is not bool or type(shut) is not list:
        raise Unencodable
    mask = sum(1 << i for i, m in enumerate(markets) if m in shut)
    if shut != [m for i, m in enumerate(markets) if mask >> i & 1]:
        raise Unencodable
    return STATUS_NO[status] | available << 2 | mask << 3


def _state_of(flags: int, markets: tuple[str, ...]) -> tuple[str, bool, list[str]]:
    return STATUS_OF[flags & 3], bool(flags >> 2 & 1), [m for i, m in enumerate(markets) if flags >> (3 + i) & 1]


def _encode_market(out: bytearray, p: Mapping[str, Any], ms: int, live: bool, code: Code) -> None:
    _keys(p, _MARKET_KEYS)
    if not _same(p["timestamp"], ms) or p["status"] not in STATUS_NO:
        raise Unencodable
    outcome, reason = p["outcome"], p["reason"]
    _put(out, L_MARKET * 2 + live)
    for n in (code(_event(p)), code(_str(p["bookmaker"])), code(_str(p["market_key"])),
              0 if outcome is None else code(_str(outcome)), STATUS_NO[p["status"]],
              0 if reason is None else code(_str(reason))):
        _put(out, n)


def _put_text(out: bytearray, s: object) -> None:
    if s is None:
        out.append(0)
        return
    data = _str(s).encode("utf-8", "surrogatepass")  # a lone surrogate comes back as it went in
    _put(out, 1 + len(data))
    out += data


def _encode_pbp(out: bytearray, p: Mapping[str, Any], ms: int, live: bool, code: Code) -> None:
    _keys(p, _PBP_KEYS)
    state = p["state"]
    if type(state) is not dict:
        raise Unencodable
    _keys(state, _STATE_KEYS)
    period = state["period"]
    _put(out, L_PBP * 2 + live)
    match = ("m", _str(p["match_id"]), _str(p["sport_key"]), _str(p["team_or_player_a"]),
             _str(p["team_or_player_b"]))
    for n in (code(match), code(_str(p["source"])), code(_str(p["role"])), code(_str(p["event_type"])),
              code(_str(state["status"]))):
        _put(out, n)
    _put_text(out, p["score_a"])
    _put_text(out, p["score_b"])
    _put_text(out, _str(p["description"]))
    _put_text(out, state["clock"])
    if period is None:  # 0 None, 1 text follows, else 2 + zigzag(int)
        out.append(0)
    elif type(period) is int:
        _put(out, 2 + _zig(period))
    else:
        out.append(1)
        _put_text(out, _str(period))
    _put(out, _zig(_int(p["occurred_at_ms"]) - ms))
    _put(out, _zig(_int(p["captured_at_ms"]) - ms))


def _encode_status(out: bytearray, p: Mapping[str, Any], ms: int, live: bool, code: Code) -> None:
    _keys(p, _STATUS_KEYS)
    if not _same(p["timestamp"], ms):
        raise Unencodable
    prev = p["previous_source"]
    _put(out, L_STATUS * 2 + live)
    for n in (code(_str(p["status"])), code(_str(p["sport_key"])), code(_str(p["match_id"])),
              code(_str(p["source"])), 0 if prev is None else code(_str(prev))):
        _put(out, n)
    _put_text(out, p["reason"])


# -- decode ---------------------------------------------------------------------------------

def layout_of(body: bytes) -> tuple[int, bool]:
    """(layout, live) from a body's first byte."""
    return body[0] >> 1, bool(body[0] & 1)


def decode(body: bytes, *, seq: int, ms: int, name: Name) -> tuple[dict[str, Any] | None, str]:
    """(payload, its JSON text) of a stored frame; a RAW body gives (None, text).

    Odds and drop frames, nearly all of the log, get their text from templates (a replay of
    100,000 frames spends most of its time here); it is the text `frames.dumps` makes of the
    same payload, which the tests check."""
    layout = body[0] >> 1
    if layout in (L_DROP, L_DROP_AS):
        return _decode_drop(varints(body), seq, ms, name, layout == L_DROP_AS)
    if layout in (L_GAME, L_GAME2):
        return _decode_game(varints(body), seq, ms, name, layout == L_GAME2)
    if layout in (L_PROP, L_PROP2):
        return _decode_prop(varints(body), seq, ms, name, layout == L_PROP2)
    if layout == L_MARKET:
        p = _decode_market(varints(body), seq, ms, name)
        return p, dumps(p)
    if layout == L_PBP:
        p = _decode_pbp(_Reader(body, 1), seq, ms, name)
        return p, dumps(p)
    if layout == L_STATUS:
        p = _decode_status(_Reader(body, 1), seq, ms, name)
        return p, dumps(p)
    if layout == RAW:
        return None, body[1:].decode("utf-8", "surrogatepass")
    raise ValueError(f"unknown stream-log layout {layout}")


# JSON pieces exactly as frames.dumps writes them (separators "," ":", ensure_ascii=False)
_js = lru_cache(maxsize=1 << 16)(json.encoder.encode_basestring)  # type: ignore[attr-defined]


def _num(x: float | None) -> str:
    return "null" if x is None else repr(x)


def _opt(s: str | None) -> str:
    return "null" if s is None else _js(s)


def _decode_drop(v: list[int], seq: int, ms: int, name: Name, after: bool) -> tuple[dict[str, Any], str]:
    _, event_id, sport, home, away, commence = name(v[1])
    book, market, outcome = name(v[2]), name(v[3]), name(v[4])
    prop = market not in GAME_MARKETS
    player = None
    if prop:
        player = name(v[5]) if v[5] else None
        point, i = _point(v, 6, name)
    else:
        point, i = _point(v, 5, name)
    prev, new = _price(v[i]), _price(v[i + 1])
    assert prev is not None and new is not None
    delta = _cents(new) - _cents(prev)
    last, elapsed = ms + _unzig(v[i + 2]), _unzig(v[i + 3])
    kind, label = ("prop" if prop else "game"), market_label(market)
    side = outcome if prop else _GAME_SIDE[market] + outcome
    direction = "toward_favorite" if delta < 0 else "toward_dog"
    p: dict[str, Any] = {
        "type": "odds_drop", "sport_key": sport, "event_id": event_id, "bookmaker": book, "kind": kind,
        "market_key": market, "market": label, "side": side, "outcome": outcome, "prev": prev, "new": new,
        "delta": delta, "prior_price": prev, "new_price": new, "delta_cents": abs(delta), "direction": direction,
        "point": point, "home_team": home, "away_team": away, "commence_time": commence, "last_update": last,
        "timestamp": ms, "elapsed_ms": elapsed,
    }
    pt = _num(point)
    text = (f'{{"type":"odds_drop","sport_key":{_js(sport)},"event_id":{_js(event_id)},"bookmaker":{_js(book)},'
            f'"kind":"{kind}","market_key":{_js(market)},"market":{_js(label)},"side":{_js(side)},'
            f'"outcome":{_js(outcome)},"prev":{prev},"new":{new},"delta":{delta},"prior_price":{prev},'
            f'"new_price":{new},"delta_cents":{abs(delta)},"direction":"{direction}","point":{pt},'
            f'"home_team":{_js(home)},"away_team":{_js(away)},"commence_time":{_js(commence)},'
            f'"last_update":{last},"timestamp":{ms},"elapsed_ms":{elapsed}')
    if prop:
        p["player"] = player
        p["line"] = point
        text += f',"player":{_opt(player)},"line":{pt}'
    if after:
        p["after_suspension"] = True
        text += ',"after_suspension":true'
    p["id"] = seq
    return p, f'{text},"id":{seq}}}'


def _row_head(v: list[int], kind: str, ms: int, name: Name, last: int) -> tuple[dict[str, Any], str]:
    _, event_id, sport, home, away, commence = name(v[1])
    book = name(v[2])
    last_update = ms + _unzig(last)
    row = {"kind": kind, "sport_key": sport, "event_id": event_id, "bookmaker": book, "home_team": home,
           "away_team": away, "commence_time": commence, "last_update": last_update}
    text = (f'{{"kind":"{kind}","sport_key":{_js(sport)},"event_id":{_js(event_id)},"bookmaker":{_js(book)},'
            f'"home_team":{_js(home)},"away_team":{_js(away)},"commence_time":{_js(commence)},'
            f'"last_update":{last_update}')
    return row, text


def _tail(row: dict[str, Any], flags: int | None, markets: tuple[str, ...]) -> str:
    """The row's last fields (available, action and, with market state, status and
    suspended_markets), set in `row` and as JSON text."""
    if flags is None:
        row["available"] = True
        row["action"] = "upsert"
        return '"available":true,"action":"upsert"'
    status, available, shut = _state_of(flags, markets)
    row.update(available=available, action="upsert", status=status, suspended_markets=shut)
    listed = ",".join(_js(m) for m in shut)
    return (f'"available":{"true" if available else "false"},"action":"upsert","status":"{status}",'
            f'"suspended_markets":[{listed}]')


def _odds(row: dict[str, Any], row_text: str, markets: list[str], seq: int, ms: int) -> tuple[dict[str, Any], str]:
    sport = row["sport_key"]
    p = {"type": "odds_update", "sport_key": sport, "timestamp": ms, "count": 1, "data": [row],
         "markets": markets, "coalesced": False, "id": seq}
    listed = ",".join(_js(m) for m in markets)
    return p, (f'{{"type":"odds_update","sport_key":{_js(sport)},"timestamp":{ms},"count":1,"data":[{row_text}'
               f'}}],"markets":[{listed}],"coalesced":false,"id":{seq}}}')


def _decode_game(v: list[int], seq: int, ms: int, name: Name, state: bool) -> tuple[dict[str, Any], str]:
    mask = v[3]
    row, text = _row_head(v, "game", ms, name, v[4])
    parts = [text]
    i = 6 if state else 5
    for f in _GAME_VALUES:
        if f in _POINT_FIELDS:
            value, i = _point(v, i, name)
        else:
            value = _price(v[i])
            i += 1
        row[f] = value
        parts.append(f'"{f}":{_num(value)}')
    parts.append(_tail(row, v[5] if state else None, GAME_MARKETS))
    return _odds(row, ",".join(parts), [m for b, m in enumerate(GAME_MARKETS) if mask >> b & 1], seq, ms)


def _decode_prop(v: list[int], seq: int, ms: int, name: Name, state: bool) -> tuple[dict[str, Any], str]:
    market = name(v[4])
    row, text = _row_head(v, "prop", ms, name, v[5])
    player = name(v[3]) if v[3] else None
    label = market_label(market)
    line, i = _point(v, 7 if state else 6, name)
    over, under = _price(v[i]), _price(v[i + 1])
    row.update(player=player, market_key=market, market=label, line=line, over_price=over, under_price=under)
    text += (f',"player":{_opt(player)},"market_key":{_js(market)},"market":{_js(label)},"line":{_num(line)},'
             f'"over_price":{_num(over)},"under_price":{_num(under)},')
    text += _tail(row, v[6] if state else None, (market,))
    return _odds(row, text, [market], seq, ms)


def _decode_market(v: list[int], seq: int, ms: int, name: Name) -> dict[str, Any]:
    _, event_id, sport, home, away, commence = name(v[1])
    return {"type": "market_status", "sport_key": sport, "event_id": event_id, "bookmaker": name(v[2]),
            "market_key": name(v[3]), "outcome": name(v[4]) if v[4] else None, "status": STATUS_OF[v[5]],
            "reason": name(v[6]) if v[6] else None, "home_team": home, "away_team": away,
            "commence_time": commence, "timestamp": ms, "id": seq}


def _decode_pbp(r: _Reader, seq: int, ms: int, name: Name) -> dict[str, Any]:
    _, match_id, sport, team_a, team_b = name(r.int())
    source, role, event_type, status = name(r.int()), name(r.int()), name(r.int()), name(r.int())
    score_a, score_b, description, clock = r.text(), r.text(), r.text(), r.text()
    tag = r.int()
    period: int | str | None = None if tag == 0 else r.text() if tag == 1 else _unzig(tag - 2)
    occurred, captured = ms + _unzig(r.int()), ms + _unzig(r.int())
    return {"type": "pbp_event", "id": seq, "match_id": match_id, "sport_key": sport, "source": source,
            "role": role, "event_type": event_type, "team_or_player_a": team_a, "team_or_player_b": team_b,
            "score_a": score_a, "score_b": score_b, "description": description,
            "state": {"period": period, "clock": clock, "status": status},
            "occurred_at_ms": occurred, "captured_at_ms": captured}


def _decode_status(r: _Reader, seq: int, ms: int, name: Name) -> dict[str, Any]:
    status, sport, match_id, source = name(r.int()), name(r.int()), name(r.int()), name(r.int())
    prev = r.int()
    return {"type": "stream_status", "status": status, "sport_key": sport, "match_id": match_id,
            "source": source, "previous_source": name(prev) if prev else None, "reason": r.text(),
            "timestamp": ms, "id": seq}

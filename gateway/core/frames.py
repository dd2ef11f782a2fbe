"""Stream frames: their payloads, and their wire forms encoded once per frame.

Pure. A `Frame` carries the JSON bytes of its payload plus the few fields filters need,
so fan-out never parses or re-encodes per subscriber. The same constructor serves live
frames and frames replayed from the store, so live and replay filter identically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .formats import AMERICAN, convert_payload
from .model import GAME_MARKETS, Drop, Play, kind_of, market_label
from .parse import play_to_row
from .steam import Steam
from .time import iso_from_ms

# stream kinds: the topics of the hub and the `stream` column of the stream log. The odds
# stream also carries `market_status` frames; steam frames have a stream of their own, which
# the drop stream adds with `kinds=steam`
ODDS, DROP, PBP, STEAM = "odds", "drop", "pbp", "steam"
FRAME_TYPE = {ODDS: "odds_update", DROP: "odds_drop", PBP: "pbp_event", STEAM: "steam"}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(obj: object) -> str:
    return _dumps(obj)


class Frame:
    """One resumable frame (seq set) or control frame (seq None), encoded once."""

    __slots__ = (
        "_chunk",
        "_chunk_named",
        "_formats",
        "_sse",
        "_sse_named",
        "_ws",
        "bookmaker",
        "books",
        "delta_cents",
        "direction",
        "event_id",
        "json",
        "kinds",
        "live",
        "markets",
        "outcome",
        "payload",
        "row",
        "seq",
        "sport_key",
        "stream",
        "type",
    )

    def __init__(
        self,
        *,
        seq: int | None,
        stream: str | None,
        payload: Mapping[str, Any],
        text: str | None = None,
        live: bool = False,
    ) -> None:
        self.seq = seq
        self.stream = stream
        self.type: str = payload["type"]
        self.sport_key: str | None = payload.get("sport_key")
        self.live = live
        self.json: str = text if text is not None else _dumps(payload)
        self._sse: bytes | None = None
        self._sse_named: bytes | None = None
        self._chunk: bytes | None = None
        self._chunk_named: bytes | None = None
        self._ws: bytes | None = None
        self._formats: dict[str, Frame] | None = None
        # kept for other odds formats (`as_format`); live frames are short-lived
        self.payload: Mapping[str, Any] | None = payload if stream is not None else None
        self.delta_cents = 0
        self.direction: str | None = None
        self.event_id: str | None = None
        self.bookmaker: str | None = None
        self.books: tuple[str, ...] = ()  # steam: every book in it (a bookmakers filter needs one)
        self.kinds: tuple[str, ...] = ()
        self.markets: tuple[str, ...] = ()
        self.outcome: str | None = None
        self.row: tuple[str, str | None, str | None] | None = None  # odds_update: which row (conflation)
        if stream == DROP:
            self.event_id = payload["event_id"]
            self.bookmaker = payload["bookmaker"]
            self.kinds = (payload["kind"],)
            self.markets = (payload["market_key"],)
            self.delta_cents = payload["delta_cents"]
            self.direction = payload["direction"]
        elif stream == ODDS:
            if self.type == "market_status":
                self.event_id = payload["event_id"]
                self.bookmaker = payload["bookmaker"]
                self.kinds = (kind_of(payload["market_key"]),)
                self.markets = (payload["market_key"],)
                self.outcome = payload.get("outcome")
            else:
                row = payload["data"][0]
                self.event_id = row["event_id"]
                self.bookmaker = row["bookmaker"]
                self.kinds = (row["kind"],)
                self.markets = tuple(payload.get("markets") or ())
                self.row = (row["kind"], row.get("player"), row.get("market_key"))
        elif stream == STEAM:
            self.event_id = payload["event_id"]
            self.books = tuple(payload["books"])
            self.kinds = ("steam", payload["kind"])
            self.markets = (payload["market_key"],)
            self.delta_cents = payload["delta_cents"]
            self.direction = payload["direction"]
        elif stream == PBP:
            self.event_id = payload["match_id"]

    def as_format(self, fmt: str) -> Frame:
        """This frame with its prices in `fmt` (formats.py), built once per format and kept:
        every group asking for that format shares it and its encodings."""
        if fmt == AMERICAN or self.payload is None or self.type == "pbp_event":
            return self
        if self._formats is None:
            self._formats = {}
        out = self._formats.get(fmt)
        if out is None:
            out = self._formats[fmt] = Frame(seq=self.seq, stream=self.stream,
                                             payload=convert_payload(self.payload, fmt), live=self.live)
            out.payload = None  # a converted frame is not converted again
        return out

    @classmethod
    def control(cls, payload: Mapping[str, Any]) -> Frame:
        """A frame without an id (connected, heartbeat, stream_status, ...)."""
        return cls(seq=None, stream=None, payload=payload)

    def sse(self, named: bool) -> bytes:
        """The SSE form, with `id:` for resumable frames and `event:` when named."""
        if named:
            if self._sse_named is None:
                self._sse_named = self._encode(named=True)
            return self._sse_named
        if self._sse is None:
            self._sse = self._encode(named=False)
        return self._sse

    def sse_chunk(self, named: bool) -> bytes:
        """The SSE form as one HTTP/1.1 chunk (what a streaming response body carries)."""
        if named:
            if self._chunk_named is None:
                self._chunk_named = http_chunk(self.sse(True))
            return self._chunk_named
        if self._chunk is None:
            self._chunk = http_chunk(self.sse(False))
        return self._chunk

    def _encode(self, named: bool) -> bytes:
        head = f"id: {self.seq}\n" if self.seq is not None else ""
        if named:
            head += f"event: {self.type}\n"
        return f"{head}data: {self.json}\n\n".encode()


    def ws(self) -> bytes:
        """The WebSocket form: one unmasked, unfragmented text frame (RFC 6455 5.2)."""
        if self._ws is None:
            self._ws = ws_text_frame(self.json)
        return self._ws


def http_chunk(data: bytes) -> bytes:
    return b"%X\r\n%b\r\n" % (len(data), data)


def ws_text_frame(text: str) -> bytes:
    """A server-to-client text frame. RSV1 stays 0: valid with or without permessage-deflate
    (RFC 7692 6: a message may be sent uncompressed)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def sse_comment(text: str) -> bytes:
    return f": {text}\n\n".encode()


def sse_retry(ms: int) -> bytes:
    return f"retry: {ms}\n\n".encode()


def drop_payload(d: Drop, *, timestamp_ms: int) -> dict[str, Any]:
    q = d.quote
    prop = q.market_key not in ("h2h", "spreads", "totals")
    side = q.outcome if prop else _GAME_SIDE[q.market_key] + q.outcome
    payload: dict[str, Any] = {
        "type": "odds_drop",
        "sport_key": q.sport_key,
        "event_id": q.event_id,
        "bookmaker": q.bookmaker,
        "kind": "prop" if prop else "game",
        "market_key": q.market_key,
        "market": market_label(q.market_key),
        "side": side,
        "outcome": q.outcome,
        "prev": d.prev,
        "new": d.new,
        "delta": d.delta,
        "prior_price": d.prev,
        "new_price": d.new,
        "delta_cents": abs(d.delta),
        "direction": d.direction,
        "point": q.point,
        "home_team": q.home_team,
        "away_team": q.away_team,
        "commence_time": iso_from_ms(q.commence_time_ms),
        "last_update": q.observed_at_ms,
        "timestamp": timestamp_ms,
        "elapsed_ms": d.elapsed_ms,
    }
    if prop:
        payload["player"] = q.player
        payload["line"] = q.point
    if d.after_suspension:
        payload["after_suspension"] = True
    return payload


def market_status_payload(ev: Any, bookmaker: str, market_key: str, outcome: str | None, status: str,
                          reason: str | None, *, timestamp_ms: int) -> dict[str, Any]:
    """A `market_status` frame: a market (outcome None) or one outcome of it changed state.
    `ev` is the board's EventInfo."""
    return {"type": "market_status", "sport_key": ev.sport_key, "event_id": ev.id, "bookmaker": bookmaker,
            "market_key": market_key, "outcome": outcome, "status": status, "reason": reason,
            "home_team": ev.home_team, "away_team": ev.away_team, "commence_time": iso_from_ms(ev.commence_time_ms),
            "timestamp": timestamp_ms}


def steam_payload(s: Steam, *, timestamp_ms: int) -> dict[str, Any]:
    """A `steam` frame: the books, their moves (oldest first), the first mover, the time spread."""
    q = s.quote
    prop = q.market_key not in GAME_MARKETS
    payload: dict[str, Any] = {
        "type": "steam", "sport_key": q.sport_key, "event_id": q.event_id, "kind": "prop" if prop else "game",
        "market_key": q.market_key, "market": market_label(q.market_key),
        "side": q.outcome if prop else _GAME_SIDE[q.market_key] + q.outcome, "outcome": q.outcome,
        "player": q.player, "direction": s.direction, "books": list(s.books), "book_count": len(s.moves),
        "moves": [{"bookmaker": m.bookmaker, "prev": m.prev, "new": m.new, "delta": m.delta, "point": m.point,
                   "at": m.at_ms} for m in s.moves],
        "first_mover": s.first_mover, "first_move_at": s.moves[0].at_ms, "last_move_at": s.moves[-1].at_ms,
        "time_spread_ms": s.spread_ms, "delta_cents": s.min_cents,
        "home_team": q.home_team, "away_team": q.away_team, "commence_time": iso_from_ms(q.commence_time_ms),
        "timestamp": timestamp_ms,
    }
    return payload


_GAME_SIDE = {"h2h": "h2h_", "spreads": "spread_", "totals": "total_"}


def odds_payload(row: Mapping[str, Any], markets: tuple[str, ...], *, timestamp_ms: int) -> dict[str, Any]:
    """An `odds_update` frame carrying one OddsRow (`markets` = the markets that changed)."""
    return {
        "type": "odds_update",
        "sport_key": row["sport_key"],
        "timestamp": timestamp_ms,
        "count": 1,
        "data": [row],
        "markets": list(markets),
        "coalesced": False,
    }


def pbp_payload(p: Play, *, seq: int) -> dict[str, Any]:
    """The `pbp_event` frame: the PBP row (as ingest takes it) plus its type and id."""
    return {"type": "pbp_event", "id": seq, **play_to_row(p)}


def with_id(payload: dict[str, Any], seq: int) -> dict[str, Any]:
    """Resumable frames carry their sequence number as `id` (WS clients read it there)."""
    payload["id"] = seq
    return payload

"""Stream frames: their payloads, and their wire forms encoded once per frame.

Pure. A `Frame` carries the JSON bytes of its payload plus the few fields filters need,
so fan-out never parses or re-encodes per subscriber. The same constructor serves live
frames and frames replayed from the store, so live and replay filter identically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import Drop, Play, market_label
from .parse import play_to_row
from .time import iso_from_ms

# stream kinds: the topics of the hub and the `stream` column of the stream log
ODDS, DROP, PBP = "odds", "drop", "pbp"
FRAME_TYPE = {ODDS: "odds_update", DROP: "odds_drop", PBP: "pbp_event"}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(obj: object) -> str:
    return _dumps(obj)


class Frame:
    """One resumable frame (seq set) or control frame (seq None), encoded once."""

    __slots__ = (
        "_chunk",
        "_chunk_named",
        "_sse",
        "_sse_named",
        "_ws",
        "bookmaker",
        "delta_cents",
        "direction",
        "event_id",
        "json",
        "kinds",
        "live",
        "markets",
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
        self.delta_cents = 0
        self.direction: str | None = None
        self.event_id: str | None = None
        self.bookmaker: str | None = None
        self.kinds: tuple[str, ...] = ()
        self.markets: tuple[str, ...] = ()
        if stream == DROP:
            self.event_id = payload["event_id"]
            self.bookmaker = payload["bookmaker"]
            self.kinds = (payload["kind"],)
            self.markets = (payload["market_key"],)
            self.delta_cents = payload["delta_cents"]
            self.direction = payload["direction"]
        elif stream == ODDS:
            row = payload["data"][0]
            self.event_id = row["event_id"]
            self.bookmaker = row["bookmaker"]
            self.kinds = (row["kind"],)
            self.markets = tuple(payload.get("markets") or ())
        elif stream == PBP:
            self.event_id = payload["match_id"]

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

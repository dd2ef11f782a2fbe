"""WebSocket streams (contract section 5): `/ws/odds/{sport}` and `/ws/live/{sport}`, also under /v1.

Frames are the SSE frames, one JSON text message each (`Frame.json`; resumable frames carry
`id`), written straight to the socket on plain HTTP/1.1 connections (see direct.py).
`/ws/odds` takes the odds SSE query parameters; `/ws/live` carries in-play data only
(`odds_update` of live events, `pbp_event`, `odds_drop` with `threshold`/`direction`,
default 10) and its `initial_state` adds `live_state`. Client messages: see ws_messages.py.

Decisions:
- Every refusal happens after accept (a close before accept becomes HTTP 403 and loses the
  code): one `{"type":"error","error":...,"message":...}` frame, then the close code.
  4003 missing key, 1008 invalid key, 4001 tier without `odds_streams` / expired or invalid
  session, 4002 connection cap (one count per key shared with SSE), 1001 shutting down.
- A bad query parameter: `{"type":"error","error":"invalid_param","param":P,"message":...}`
  then close 1008 (policy violation: the request as made will never be served; fix it,
  do not retry it unchanged).
- Key forms: X-API-Key, Bearer, subprotocol `apikey.KEY` (echoed in the accept), then
  `?apiKey=`/`?api_key=` (headers win). Connects are governed by the cap, not the rate limiter.
- `/ws/live` without a key uses the `gw_session` cookie (a key, when given, wins). The
  cookie path requires an Origin equal to the origin the request came to (scheme, host,
  port): a foreign or missing Origin closes 1008 (cross-site WebSocket hijacking is a policy
  violation, not an auth expiry). An expired/invalid session or a revoked key closes 4001.
  The key behind the session needs the same tier as the key path, so a cookie is never a
  way around the tier gate. Key-authenticated sockets accept any Origin unless
  `server.cors_origins` is an allow-list (then others close 1008).
- The end of a stream: slow consumer -> the final error frame, then 4008; shutdown -> the
  `stream_status` closing frame, then 1001; a server error -> 1011. A client that stops
  answering transport pings for `streams.ws_idle_timeout_s` gets 1011 (hypercorn_patches.py).
- `{"type":"resume","last_event_id":N}` ends the current session and starts a new one from
  N (same no-gap/no-duplicate replay as on connect). Its first frame is a new `connected`
  with `resumed_from: N`; frames that arrive before it belong to the old session.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import trio

from ..auth import KEY_REVOKED, TIER_REQUIRED, ApiKey, Slot
from ..core.budget import TokenBucket
from ..core.filters import Filter, ParamError, bool_param, csv, int_param, one, parse_filter, parse_sports
from ..core.frames import DROP, ODDS, PBP, STEAM, Frame, dumps, ws_text_frame
from ..handle import Gateway
from ..hub import SHUTDOWN, SLOW_CONSUMER
from ..sessions import COOKIE_NAME
from ..streaming import StreamPlan, StreamSession, odds_snapshot
from ..writer import wall_ms
from .asgi_websocket import AsgiWebSocket, Disconnected
from .common import ApiError, key_from, require_stream_tier, resolve_key
from .direct import (
    CURRENT_CONNECTION,
    DirectWriter,
    attach,
    nothing,
    plain_socket_fd,
    run_direct,
    send_unless_cut,
    ws_encode,
    ws_protocol,
)
from .session import effective_scheme, same_origin, session_key
from .sse import connected, resume_params
from .ws_detached import detach_ws
from .ws_messages import BadMessage, apply_subscribe, apply_unsubscribe, event_id_field, parse_message, resume_id

logger = logging.getLogger(__name__)

SUBPROTOCOL_PREFIX = "apikey."
CLOSE_LINGER_S = 2.0


class Reject(Exception):
    def __init__(self, code: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.error, self.message, self.extra = code, error, message, extra


@dataclass(frozen=True)
class Spec:
    """What a connection asked for, validated; the filter then changes with `subscribe`."""

    api_key: ApiKey
    auth: str  # "key" or "session"
    sport_key: str
    live: bool
    sports: frozenset[str] | None
    filter: Filter
    heartbeat_s: int
    last_event_id: int | None
    bad_last_event_id: bool
    limit: int
    max_age_s: int
    since: int | None
    streams: tuple[str, ...] = (ODDS,)


def subprotocol_keys(requested: list[str]) -> tuple[list[str], str | None]:
    """(keys, subprotocol to echo) from `Sec-WebSocket-Protocol: apikey.KEY`; the keys count
    as header forms in `key_from` (two different ones are refused)."""
    found = [p for p in requested if p.startswith(SUBPROTOCOL_PREFIX) and len(p) > len(SUBPROTOCOL_PREFIX)]
    return [p[len(SUBPROTOCOL_PREFIX):] for p in found], (found[0] if found else None)


async def serve_socket(gw: Gateway, ws: AsgiWebSocket, sport_key: str, *, live: bool) -> None:
    """`/ws/odds/{sport}` and `/ws/live/{sport}` (also under /v1), served below Quart."""
    try:
        await _serve_socket(gw, ws, sport_key, live=live)
    except Disconnected:
        pass  # the client left: whatever it held was released on the way out


async def _serve_socket(gw: Gateway, ws: AsgiWebSocket, sport_key: str, *, live: bool) -> None:
    proto_keys, subprotocol = subprotocol_keys(ws.requested_subprotocols)
    await ws.accept(subprotocol=subprotocol)
    try:
        if gw.shutting_down:
            raise Reject(1001, "unavailable", "the gateway is shutting down; reconnect shortly")
        api_key, how = await authorise(gw, ws, proto_keys, live=live)
        spec = build_spec(gw, ws, api_key, how, sport_key, live)
        limit = gw.config.tiers[api_key.tier].max_connections
        slot = await gw.caps.acquire(api_key.id, limit, api_key.tier, needs="odds")
        if slot is None:
            raise Reject(4002, "connection_cap", f"this key already holds {limit} concurrent streams (tier "
                         f"{api_key.tier}); close one or upgrade", limit=limit)
    except Reject as r:
        await ws.send(dumps({"type": "error", "error": r.error, "message": r.message, **r.extra,
                             "timestamp": wall_ms()}))
        await close_and_linger(ws, r.code, _reason(r.message))
        return
    code, reason = 1011, "server error"
    detached = False
    try:
        conn = WsConnection(gw, ws, spec, slot)
        slot.on_end = conn.end  # a revoked key ends the stream (key_watch.py)
        result = await conn.run()
        if not isinstance(result, tuple):  # DETACHED: the stream and its slot live on in ws_detached.py
            detached = True
            conn.ws, conn.nursery = None, None  # the request's objects (Hypercorn's, its tasks) can go
            conn.handed_over.set()
            return
        code, reason = result
    except Exception:
        logger.exception("WebSocket %s failed", ws.path)
    finally:
        if not detached:
            slot.release()
            conn_done(locals().get("conn"), slot)
    logger.info("ws %s key=%s closed %d", ws.path, api_key.name, code)
    await close_and_linger(ws, code, reason)


def conn_done(conn: WsConnection | None, slot: Slot) -> None:
    """Break the references a finished stream holds in a cycle (its slot calls back into it,
    its writer and connection point at each other), so that it is freed at once rather than
    by a rare full GC pass (bench/cap_accounting.py)."""
    slot.on_end = None
    if conn is not None:
        conn.slot = conn.session = None
        conn.plan.snapshot = None  # a bound method of conn
        if conn.direct is not None:
            conn.direct.conn.gw_direct = None
            conn.direct.wakeup = nothing


async def close_and_linger(ws: Any, code: int, reason: str) -> None:
    """Close with `code`, then wait (briefly) for the client's close frame: returning at once
    closes TCP with the client's frames unread, the kernel answers with a reset, and browsers
    then lose our close frame and report 1006 instead of the code."""
    await ws.close(code, reason)
    with trio.move_on_after(CLOSE_LINGER_S):
        try:
            while True:
                await ws.receive()
        except Disconnected:
            pass


def _reason(text: str) -> str:
    return text.encode()[:120].decode(errors="ignore")


async def authorise(gw: Gateway, ws: Any, proto_keys: list[str], *, live: bool) -> tuple[ApiKey, str]:
    try:
        key = key_from(ws.headers, ws.args, header_keys=proto_keys)
    except ApiError as exc:  # two different keys
        raise Reject(1008, exc.error, exc.message, **exc.extra) from None
    if key is None and live:
        token = ws.cookies.get(COOKIE_NAME)
        if token:
            return await session_auth(gw, ws, token), "session"
    try:
        api_key = await resolve_key(gw, key)
    except ApiError as exc:
        message = exc.message + (" (or log in: POST /v1/session)" if live and exc.error == "missing_key" else "")
        raise Reject(4003 if exc.error == "missing_key" else 1008, exc.error, message) from None
    origin, allowed = ws.headers.get("Origin"), gw.config.server.cors_origins
    if origin and "*" not in allowed and origin not in allowed and not _same_origin(ws):
        raise Reject(1008, "forbidden_origin", f"origin {origin[:60]} is not allowed (server.cors_origins)")
    _tier_gate(gw, api_key)
    return api_key, "key"


def _same_origin(ws: Any) -> bool:
    return same_origin(ws.headers.get("Origin"), ws.host, effective_scheme(ws.scheme))


async def session_auth(gw: Gateway, ws: Any, token: str) -> ApiKey:
    if not _same_origin(ws):
        raise Reject(1008, "forbidden_origin", "a session cookie is only accepted from pages served by this "
                     "gateway (Origin must match)")
    found = await session_key(gw, token)
    if found is None:
        raise Reject(4001, "session_expired", "the dashboard session expired or is invalid; log in again")
    _tier_gate(gw, found[1])
    return found[1]


def _tier_gate(gw: Gateway, api_key: ApiKey) -> None:
    try:
        require_stream_tier(gw, api_key, pbp=False, what="WebSocket streams")
    except ApiError as exc:
        raise Reject(4001, exc.error, exc.message) from None


def build_spec(gw: Gateway, ws: Any, api_key: ApiKey, auth: str, sport_key: str, live: bool) -> Spec:
    p = ws.params
    catalog = gw.universe.catalog()
    try:
        sports = parse_sports({}, sport_key, catalog)
        flt = parse_filter(p, catalog, drops=live, conflate=True)
        if live:
            flt = replace(flt, live_only=True)
        heartbeat_s = int_param(p, "heartbeat_s", gw.config.streams.ws_heartbeat_s, 1, 30)
        last_id, bad = resume_params(p, ws.headers.get("Last-Event-ID"))
        limit = int_param(p, "limit", 500, 1, 1000)
        max_age_s = int_param(p, "max_age_s", 600, 1, 3600)
        since = int_param(p, "since", 0, 0, 2**53) if one(p, "since") else None
        bool_param(p, "named_events", False)  # accepted as on SSE; WS frames are never named
        streams = live_streams(p) if live else (ODDS,)
        if live and (STEAM in streams or flt.steam != "off"):  # types=steam or kinds=steam (issue 15.3)
            streams, flt = tuple(dict.fromkeys((*streams, STEAM))), replace(flt, steam=flt.steam.replace("off", "also"))
    except ParamError as exc:
        raise Reject(1008, "invalid_param", exc.message, param=exc.param) from None
    return Spec(api_key, auth, sport_key, live, sports, flt, heartbeat_s, last_id, bad, limit, max_age_s, since,
                streams)


DETACHED = object()  # WsConnection.run: the stream left Hypercorn and Quart (ws_detached.py)
EXPENSIVE = 10  # what a message that builds a snapshot or starts a replay counts in the budget


def message_cost(msg: dict[str, Any] | None) -> int:
    if msg is not None and (msg["type"] == "resume" or (msg["type"] == "subscribe" and msg.get("snapshot") is True)):
        return EXPENSIVE
    return 1


LIVE_TYPES = {"odds_update": ODDS, "pbp_event": PBP, "odds_drop": DROP, "steam": STEAM}


def live_streams(p: dict[str, list[str]]) -> tuple[str, ...]:
    """`/ws/live?types=odds_drop,pbp_event` (our extension): which in-play frames to send."""
    wanted = csv(p, "types")
    if wanted is None:
        return (ODDS, PBP, DROP)  # steam frames only when asked for (types=steam)
    if bad := [t for t in wanted if t not in LIVE_TYPES]:
        raise ParamError("types", f"unknown frame type: {', '.join(bad)} (use {', '.join(LIVE_TYPES)})")
    return tuple(dict.fromkeys(LIVE_TYPES[t] for t in wanted))


def _only(rows: list[dict[str, Any]], event_ids: frozenset[str] | None) -> list[dict[str, Any]]:
    return rows if event_ids is None else [r for r in rows if r["match_id"] in event_ids]


def direct_writer(gw: Gateway, ws: Any) -> DirectWriter | None:
    """Our frames go straight to the socket (see direct.py) on a plain HTTP/1.1 WebSocket;
    Hypercorn keeps the handshake, pings and the close. None: stay on Quart's send."""
    conn = CURRENT_CONNECTION.get()
    if not gw.config.streams.direct_writes or conn is None or plain_socket_fd(conn) is None:
        return None
    protocol = ws_protocol(conn)
    if protocol is None:  # HTTP/2 or another server
        return None
    open_state = type(protocol.state).OPEN
    writer = DirectWriter(conn, encode=ws_encode, is_open=lambda: protocol.state is open_state,
                          max_backlog=gw.config.streams.direct_backlog_bytes,
                          stall_s=gw.config.streams.write_stall_timeout_s)
    writer.active = True
    return writer


class WsConnection:
    """One accepted, authorised socket: a reader task for client messages, a writer for frames."""

    def __init__(self, gw: Gateway, ws: Any, spec: Spec, slot: Slot | None = None) -> None:
        self.gw, self.ws, self.spec, self.slot = gw, ws, spec, slot
        self.reader_busy = False  # a client message is being handled (ws_detached.quiet)
        self.unhandled: list[str | bytes] = []  # received, not yet handled (see reader)
        self.handed_over = trio.Event()  # the request's task let go: the detached task may read on
        self.plan = self._plan(spec.filter, spec.last_event_id, spec.bad_last_event_id)
        self.session: StreamSession | None = None
        self.scope: trio.CancelScope | None = None
        self.resume_to: int | None = None
        self.direct = direct_writer(gw, ws)
        self.ended: str | None = None
        self.nursery: trio.Nursery | None = None
        self.closing: tuple[int, str] | None = None  # set by the reader to close the socket
        self.budget: TokenBucket | None = None

    def end(self, reason: str) -> None:
        """Ended by the server (a revoked key, a tier without this stream): final frame, 4001."""
        self.ended = reason
        if self.session is not None:
            self.session.end(reason)

    def _plan(self, flt: Filter, last_id: int | None, bad: bool, resumed_from: int | None = None) -> StreamPlan:
        s = self.spec
        info = connected(s.api_key, "live" if s.live else "odds", s.sports, flt, s.sport_key, transport="ws",
                         auth=s.auth, heartbeat_s=s.heartbeat_s)
        if resumed_from is not None:
            info["resumed_from"] = resumed_from
        return StreamPlan(s.streams, s.sports, flt, s.heartbeat_s, info, self.snapshot, last_id, bad, "ws")

    async def snapshot(self) -> dict[str, Any]:
        s, flt = self.spec, self.plan.filter
        live_state = None
        if s.live:
            sports = sorted(s.sports if s.sports is not None else self.gw.universe.active_sports)
            live_state = _only(await self.gw.view.live_state(sports, None, live_only=True), flt.event_ids)
        now = wall_ms()
        rows, truncated = odds_snapshot(self.gw.board, s.sports, flt, now=now, max_age_s=s.max_age_s,
                                        since=s.since, limit=s.limit, final=self.gw.view.final_matches)
        out: dict[str, Any] = {"type": "initial_state", "sport_key": s.sport_key, "timestamp": now,
                               "count": len(rows), "data": rows, "since": s.since, "truncated": truncated,
                               "snapshot_complete": not truncated}
        if live_state is not None:
            out["live_state"] = live_state
        return out

    async def send(self, payload: dict[str, Any]) -> None:
        if self.direct is not None:
            await self.direct.send(ws_text_frame(dumps(payload)))
        else:
            await self.ws.send(dumps(payload))

    async def send_batch(self, batch: list[Frame]) -> bool:
        """One message per frame (that is the protocol); frames queued before a `subscribe`
        narrowed the filter are dropped here. True: the hub cut this client meanwhile."""
        flt = self.plan.filter
        frames = [f for f in batch if f.seq is None or flt.matches(f)]
        if not frames:
            return False
        if self.direct is not None:
            sub = self.session.sub if self.session is not None else None
            return await send_unless_cut(self.direct, sub, ws_encode(frames))
        for frame in frames:
            await self.ws.send(frame.json)
        return False

    def set_filter(self, flt: Filter) -> None:
        """Applies from the next publish; frames queued before it are re-checked on sending."""
        self.plan.filter = flt
        if self.session is not None and self.session.sub is not None:
            self.gw.hub.set_filter(self.session.sub, flt)

    async def run(self) -> tuple[int, str] | object:
        result: tuple[int, str] | object = (1011, "server error")
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self.reader)  # always drain inbound messages (field notes, pitfall 13)
            result = await self.writer()
            nursery.cancel_scope.cancel()
        return self.closing or result

    async def writer(self) -> tuple[int, str] | object:
        while True:
            session = self.session = StreamSession(self.gw, self.plan)
            if self.ended is not None:
                session.end(self.ended)
            with trio.CancelScope() as scope:
                self.scope = scope
                try:
                    async with aclosing(session.frames()) as batches:
                        async for batch in batches:
                            cut = await self.send_batch(batch)
                            del batch
                            if self.direct is not None and (cut or attach(session, self.direct)):
                                if not cut and self.slot is not None and detach_ws(self, self.slot):
                                    return DETACHED
                                await run_direct(session, self.direct, self.plan.heartbeat_s)
                                break  # cut, or the socket is gone: frames() ends the session
                finally:
                    self.scope = None
                    session.close()
            if not scope.cancelled_caught or self.resume_to is None:
                break
            last_id, self.resume_to = self.resume_to, None
            self.plan = self._plan(self.plan.filter, last_id, False, resumed_from=last_id)
        return self.close_for(session.ended or (session.sub.cut_reason if session.sub is not None else None))

    @staticmethod
    def close_for(reason: str | None) -> tuple[int, str]:
        """The close code and reason for how a stream ended."""
        if reason in (KEY_REVOKED, TIER_REQUIRED):
            return 4001, f"{reason}: this key may no longer hold this stream"
        if reason == SLOW_CONSUMER:
            return 4008, "slow consumer: reconnect with last_event_id to resume"
        if reason == SHUTDOWN:
            return 1001, "server going away: reconnect with last_event_id to resume"
        return 1011, "stream ended unexpectedly"

    async def reader(self) -> None:
        while True:
            raw = await self.ws.receive()
            # kept until handled: if the stream leaves Quart's task (ws_detached.py) before this
            # task ran again, its cancellation lands at the next await and the message would be
            # lost; the detached task handles what is left here
            self.unhandled.append(raw)
            self.reader_busy = True
            try:
                ok = await self.on_message(raw)
            finally:
                self.reader_busy = False
            self.unhandled.remove(raw)
            if not ok:
                assert self.nursery is not None
                self.nursery.cancel_scope.cancel()
                return

    async def on_message(self, raw: str | bytes) -> bool:
        """Handle one client message; False: past the message budget (`closing` is set)."""
        cfg = self.gw.config.streams
        if self.budget is None:
            self.budget = TokenBucket(cfg.ws_messages_per_s, cfg.ws_message_burst, trio.current_time())
        try:
            msg: dict[str, Any] | None = parse_message(raw)
            error = ""
        except BadMessage as exc:
            msg, error = None, exc.message
        if not self.budget.take(message_cost(msg), trio.current_time()):
            await self.send({"type": "error", "error": "bad_message", "timestamp": wall_ms(),
                             "message": f"too many messages: at most {cfg.ws_messages_per_s:g} a second "
                                        f"(bursts of {cfg.ws_message_burst:g}; a snapshot or resume counts "
                                        f"{EXPENSIVE})"})
            self.closing = (1008, "message budget exceeded")
            return False
        try:
            if msg is None:
                raise BadMessage(error)
            await self.dispatch(msg)
        except BadMessage as exc:
            await self.send({"type": "error", "error": "bad_message", "message": exc.message,
                             "timestamp": wall_ms()})
        return True

    async def dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "ping":
            await self.send({"type": "pong", "timestamp": wall_ms()})
        elif kind == "subscribe":
            sub = apply_subscribe(msg, self.plan.filter, self.gw.universe.catalog())  # keeps live_only
            self.set_filter(sub.filter)
            ack: dict[str, Any] = {"type": "subscribed", "event_id": event_id_field(sub.filter),
                                   "event_ids": sorted(sub.filter.event_ids) if sub.filter.event_ids else None,
                                   "filters": sub.filter.describe(), "timestamp": wall_ms()}
            if sub.ignored:
                ack["ignored"] = list(sub.ignored)
            await self.send(ack)
            if sub.snapshot:
                await self.send(await self.snapshot())
        elif kind == "unsubscribe":
            self.set_filter(apply_unsubscribe(self.plan.filter))
            await self.send({"type": "unsubscribed", "filters": self.plan.filter.describe(),
                             "timestamp": wall_ms()})
        elif kind == "resume":
            self.resume_to = resume_id(msg)
            if self.scope is not None:
                self.scope.cancel()

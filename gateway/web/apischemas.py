"""JSON Schemas of what the gateway sends and takes, shared by /openapi.json and /asyncapi.json
(web/apidocs.py). They stay in the subset both JSON Schema dialects read the same (OpenAPI 3.1:
2020-12; AsyncAPI 3: draft-07): objects list their fields and required ones and allow more
(frames gain fields without breaking clients); a nullable field is a type list."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
MS: Schema = {"type": "integer", "description": "unix milliseconds"}
PRICE: Schema = {"type": ["number", "null"], "description": "American odds (or the stream's oddsFormat); null where "
                 "the book gives none"}


def null(schema: Schema) -> Schema:
    t = schema.get("type", "object")
    return {**schema, "type": [*(t if isinstance(t, list) else [t]), "null"]}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(_required: str = "", _note: str = "", **props: Schema) -> Schema:
    """An object: `props` its fields, `_required` a space-separated list of the ones always there."""
    out: Schema = {"type": "object", "properties": props}
    if _required:
        out["required"] = _required.split()
    if _note:
        out["description"] = _note
    return out


def frame(_type: str, _required: str = "", _note: str = "", **props: Schema) -> Schema:
    """A stream frame: a JSON object whose `type` is `_type`."""
    return obj(f"type {_required}".strip(), _note, type={"const": _type}, **props)


RESUMABLE = {"id": {"type": "integer", "description": "the frame's resume id (also the SSE `id:` line)"}}

_ODDS_ROW = obj(
    "kind sport_key event_id bookmaker home_team away_team commence_time last_update",
    "One book's prices for one event (kind game) or one player market (kind prop)",
    kind=enum("game", "prop"), sport_key=STR, event_id=STR, bookmaker=STR, home_team=STR, away_team=STR,
    commence_time={"type": "string", "format": "date-time"}, last_update=MS,
    home_ml=PRICE, away_ml=PRICE, draw_ml=PRICE, home_spread=null(NUM), away_spread=null(NUM),
    home_spread_price=PRICE, away_spread_price=PRICE, total=null(NUM), over_price=PRICE, under_price=PRICE,
    player=STR, market_key=STR, market=STR, line=null(NUM), available=BOOL, action=enum("upsert", "remove"),
    status=enum("open", "suspended", "closed"), suspended_markets=arr(STR))

_STATE = obj(period=null({"type": ["string", "integer"]}), clock=null(STR), status=null(STR))

_PBP_ROW = obj("match_id sport_key source event_type score_a score_b occurred_at_ms",
               match_id=STR, sport_key=STR, source=STR, role=enum("primary", "secondary"), event_type=STR,
               team_or_player_a=STR, team_or_player_b=STR, score_a={"type": ["integer", "string"]},
               score_b={"type": ["integer", "string"]}, description=STR, state=_STATE, occurred_at_ms=MS,
               captured_at_ms=MS)

_LIVE_STATE = obj("match_id sport_key score_a score_b state", type={"const": "live_state"}, match_id=STR,
                  sport_key=STR, home_team=STR, away_team=STR, score_a={"type": ["integer", "string"]},
                  score_b={"type": ["integer", "string"]}, state=_STATE, source=STR, last_play=STR, timestamp=MS)

_DROP = frame("odds_drop", "id sport_key event_id bookmaker kind market_key side outcome prev new delta direction "
              "timestamp", "A price moved by at least `threshold` cents (the contract's drop rules)", **RESUMABLE,
              sport_key=STR, event_id=STR, bookmaker=STR, kind=enum("game", "prop"), market_key=STR, market=STR,
              side=STR, outcome=enum("home", "away", "draw", "over", "under"), prev=NUM, new=NUM, delta=INT,
              prior_price=NUM, new_price=NUM, delta_cents=INT, direction=enum("toward_favorite", "toward_dog"),
              point=null(NUM), player=STR, line=null(NUM), home_team=STR, away_team=STR, commence_time=STR,
              last_update=MS, timestamp=MS, elapsed_ms=null(INT),
              after_suspension={"type": "boolean", "description": "the first price after a suspension, "
                                "compared with the last before it (absent otherwise)"})

_PRICE_AT = null(obj("t price", t=MS, price=null(NUM), status=enum("suspended", "closed")))
_CLV = null(obj("bookmaker close_price clv_cents clv_probability", bookmaker=STR, close_point=null(NUM),
                closed_at=MS, close_price=INT, clv_cents=INT, clv_probability=NUM, bet_implied_probability=NUM,
                close_implied_probability=NUM))

SCHEMAS: dict[str, Schema] = {
    "Error": obj("error message request_id", "Every HTTP error; `param` names a bad parameter",
                 error=STR, message=STR, request_id=STR, param=STR, limit=INT, retry_after_seconds=INT),
    "Sport": obj("key group title description active has_outrights", key=STR, group=STR, title=STR,
                 description=STR, active=BOOL, has_outrights=BOOL),
    "Event": obj("id sport_key sport_title commence_time home_team away_team", id=STR, sport_key=STR,
                 sport_title=STR, commence_time={"type": ["string", "integer"]}, home_team=STR, away_team=STR),
    "OddsEvent": {"allOf": [ref("Event"), obj("bookmakers", bookmakers=arr(obj(
        "key title markets", key=STR, title=STR, last_update={"type": ["string", "integer"]}, markets=arr(obj(
            "key outcomes", key=STR, last_update={"type": ["string", "integer"]},
            outcomes=arr(obj("name price", name=STR, price=NUM, point=null(NUM))))))))]},
    "OddsRow": _ODDS_ROW,
    "PbpRow": _PBP_ROW,
    "LiveState": _LIVE_STATE,
    "SourceHealth": obj("sport_key count results", sport_key=STR, count=INT, results=arr(obj(
        "source status", sport_key=STR, source=STR, role=STR, events_last_5min=INT,
        seconds_since_last_event=null(NUM), latest_capture_ms=null(INT), status=enum("fresh", "stale")))),
    "FlatQuote": obj("sport_key event_id home_team away_team commence_time bookmaker market_key outcome price",
                     "One price (POST /v1/ingest/odds also takes The Odds API v4 event lists)",
                     sport_key=STR, event_id=STR, home_team=STR, away_team=STR,
                     commence_time={"type": ["string", "integer"]}, bookmaker=STR, market_key=STR,
                     outcome=enum("home", "away", "draw", "over", "under"), price=NUM, point=null(NUM),
                     player=null(STR), odds_format=enum("american", "decimal", "probability"),
                     observed_at_ms=MS),
    "IngestResult": obj("accepted rejected rejected_count", accepted=INT, rejected_count=INT,
                        rejected=arr(obj("index reason", index=INT, reason=STR))),
    "Session": obj("tier name expires_at", tier=STR, name=STR, expires_at=MS),
    "DropFilters": obj(_note="The drop stream's filters (also top level in a webhook body)",
                       sports={"type": ["string", "array"]}, threshold=INT,
                       direction=enum("both", "toward_favorite", "toward_dog", "toward_underdog"),
                       bookmakers={"type": ["string", "array"]}, markets={"type": ["string", "array"]},
                       kinds={"type": ["string", "array"]}, event_id=STR),
    "WebhookInput": obj(_note="Create (url required) or PATCH (only the fields given; a filter set to "
                        "null is removed)", url={"type": "string", "format": "uri"}, destination_url=STR,
                        format=enum("json", "slack", "discord"), description=STR,
                        events=arr(enum("odds_drop", "steam")),
                        filters=ref("DropFilters"), is_active=BOOL, sports={"type": ["string", "array"]},
                        threshold=INT, direction=STR, bookmakers={"type": ["string", "array"]},
                        markets={"type": ["string", "array"]}, kinds={"type": ["string", "array"]},
                        event_id=STR),
    "Webhook": obj("id url format filters is_active", id=INT, url=STR, description=STR,
                   format=enum("json", "slack", "discord"), events=arr(STR), filters=ref("DropFilters"),
                   is_active=BOOL, disabled_reason=null(STR), consecutive_failures=INT, secret_hint=STR,
                   secret={"type": "string", "description": "in the answers of create and rotate-secret only"},
                   created_at=STR, created_ms=MS, updated_ms=MS),
    "WebhookList": obj("count data", count=INT, data=arr(ref("Webhook"))),
    "WebhookTestResult": obj("delivery_id webhook_id delivered", delivery_id=STR, webhook_id=INT, delivered=BOOL,
                             status_code=null(INT), error=null(STR), duration_ms=NUM),
    "Deliveries": obj("webhook_id count data", webhook_id=INT, count=INT, data=arr(obj(
        "id status", id=STR, event_type=STR, seq=null(INT), status=enum("pending", "delivered", "failed",
                                                                         "cancelled"), attempts=INT))),
    "WebhookDelivery": obj("id event_type timestamp_ms data", "The body POSTed to a webhook URL (format json)",
                           id=STR, event_type=enum("odds_drop", "steam", "test"), timestamp_ms=MS,
                           data={"oneOf": [ref("OddsDrop"), ref("Steam"), obj()]}),
    "SlackMessage": obj("text", text=STR),
    "DiscordMessage": obj("content", content=STR),
    # stream frames (SSE data lines and WebSocket text messages)
    "Connected": frame("connected", "stream tier filters timestamp", "First frame of every stream",
                       stream=STR, sport_key=STR, sports={"type": ["array", "string"]}, tier=STR, filters=obj(),
                       push_mode=STR, min_push_interval_s=NUM, timestamp=MS, resumed_from=INT),
    "InitialState": frame("initial_state", "timestamp count data", "A snapshot (odds rows, or live states)",
                          sport_key=STR, timestamp=MS, count=INT, data=arr({"oneOf": [ref("OddsRow"),
                                                                                        ref("LiveState")]}),
                          since=null(INT), truncated=BOOL, snapshot_complete=BOOL, live_state=arr(ref("LiveState"))),
    "OddsUpdate": frame("odds_update", "id sport_key timestamp count data", "One changed OddsRow", **RESUMABLE,
                        sport_key=STR, timestamp=MS, count=INT, data=arr(ref("OddsRow")), markets=arr(STR),
                        coalesced=BOOL),
    "OddsDrop": _DROP,
    "MarketStatus": frame("market_status", "id sport_key event_id bookmaker market_key status timestamp",
                          "A market (outcome null) or one outcome changed state; on the odds and live streams",
                          **RESUMABLE, sport_key=STR, event_id=STR, bookmaker=STR, market_key=STR,
                          outcome=null(STR), status=enum("open", "suspended", "closed"), reason=null(STR),
                          home_team=STR, away_team=STR, commence_time=STR, timestamp=MS),
    "Steam": frame("steam", "id sport_key event_id market_key outcome direction books moves first_mover "
                   "time_spread_ms timestamp", "At least [steam] books books moved one outcome the same way by "
                   "[steam] threshold cents each within window_s", **RESUMABLE, sport_key=STR, event_id=STR,
                   kind=enum("game", "prop"), market_key=STR, market=STR, side=STR, outcome=STR, player=null(STR),
                   direction=enum("toward_favorite", "toward_dog"), books=arr(STR), book_count=INT,
                   moves=arr(obj("bookmaker prev new delta at", bookmaker=STR, prev=NUM, new=NUM, delta=INT,
                                 point=null(NUM), at=MS)),
                   first_mover=STR, first_move_at=MS, last_move_at=MS, time_spread_ms=INT, delta_cents=INT,
                   home_team=STR, away_team=STR, commence_time=STR, timestamp=MS),
    "History": obj("event_id sport_key commence_time started from to series", "Line history of one event",
                   event_id=STR, sport_key=STR, home_team=STR, away_team=STR, commence_time=STR, started=BOOL,
                   odds_format=STR, history_days=NUM, count=INT, **{"from": MS, "to": MS},
                   series=arr(obj("bookmaker market_key outcome changes", bookmaker=STR, market_key=STR, outcome=STR,
                                  player=null(STR), point=null(NUM), open=_PRICE_AT, current=_PRICE_AT,
                                  close=_PRICE_AT, changes=arr(_PRICE_AT)))),
    "Clv": obj("event_id started bet book reference", "A bet's closing-line value (provisional before the start)",
               event_id=STR, sport_key=STR, commence_time=STR, started=BOOL, provisional=BOOL,
               bet=obj(bookmaker=STR, market_key=STR, outcome=STR, point=null(NUM), player=null(STR), price=INT,
                       time=null(INT), reference=STR), book=_CLV, reference=_CLV),
    "PbpEvent": {"allOf": [frame("pbp_event", "id", "One play (SSE: `event: pbp_event`)", **RESUMABLE),
                           ref("PbpRow")]},
    "Heartbeat": frame("heartbeat", "timestamp", "After heartbeat_s of silence; no id", timestamp=MS,
                       connections=INT),
    "StreamStatus": frame("stream_status", "status", "reset (resume impossible: a fresh snapshot follows), "
                          "closing (the stream ends), source_promoted / source_restored", id=INT,
                          status=STR, reason=STR, fresh_snapshot_required_to_clear=BOOL, timestamp=MS),
    "StreamError": frame("error", "error", "Sent before the stream or socket ends (slow_consumer, key_revoked, "
                         "...) or, on WebSocket, for a bad client message (bad_message: the socket stays open)",
                         error=STR, message=STR, param=STR, timestamp=MS),
    "Pong": frame("pong", "", "The answer to a ping message", timestamp=MS),
    "Subscribed": frame("subscribed", "", "The filter after a subscribe message", event_id=null(STR),
                        filters=obj()),
    "Unsubscribed": frame("unsubscribed", "", "Every event again", filters=obj()),
    # client -> server WebSocket messages
    "Subscribe": frame("subscribe", "", "Narrow or change the connection's filter live", event_id=null(STR),
                       event_ids=null({"type": ["array", "string"]}), bookmakers=null({"type": ["array", "string"]}),
                       markets=null({"type": ["array", "string"]}), kinds=null({"type": ["array", "string"]}),
                       threshold=INT, direction=STR, snapshot=BOOL, conflate_ms=null(INT),
                       oddsFormat=null(enum("american", "decimal", "probability"))),
    "Unsubscribe": frame("unsubscribe"),
    "Resume": frame("resume", "last_event_id", "Replay every matching frame after this id, then live",
                    last_event_id=INT),
    "Ping": frame("ping"),
}

"""`GET /openapi.json` (OpenAPI 3.1) and `GET /asyncapi.json` (AsyncAPI 3.0), built from tables.

ROUTES lists every HTTP route the gateway answers (REST, SSE, the WebSocket handshakes,
dashboard, session, webhooks, operations), CHANNELS every SSE and WebSocket stream with its
messages; payload schemas are in apischemas.py. tests/test_apidocs.py checks both documents
against their specifications and that every route the app registers (Quart's url_map and the
SSE routes of streams_asgi.py) is here and nothing else is, so they cannot drift from the code.
Neither needs a key: they describe the API, not its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, jsonify, request

from .apischemas import INT, NUM, SCHEMAS, STR, Schema, arr, enum, obj, ref

bp = Blueprint("apidocs", __name__)

VERSION = "0.1.0"
CSV: Schema = {"type": "string", "description": "comma-separated; the parameter may also repeat"}


def _int(lo: int, hi: int, default: int) -> Schema:
    return {"type": "integer", "minimum": lo, "maximum": hi, "default": default}


# name, where, schema, description: one row per distinct parameter (the key is what routes list)
PARAMS: dict[str, tuple[str, str, Schema, str]] = {
    "sport_key": ("sport_key", "path", STR, "a sport key, e.g. basketball_nba (GET /v1/sports)"),
    "drop_sport": ("sport_key", "path", STR, "a sport key, `all` (every sport; new ones join) or `multi` "
                   "(needs `sports`)"),
    "webhook_id": ("webhook_id", "path", INT, "the webhook's id (another key's id is a 404)"),
    "all": ("all", "query", {"type": "boolean", "default": False}, "also list inactive sports"),
    "regions": ("regions", "query", CSV, "us, us2, uk, eu, fr, au, ca, mx, latam, br, asia (accepted, not filtered)"),
    "game_markets": ("markets", "query", {**CSV, "default": "h2h"}, "h2h, spreads, totals"),
    "oddsFormat": ("oddsFormat", "query", enum("decimal", "american"), "default decimal (/live: american)"),
    "dateFormat": ("dateFormat", "query", enum("iso", "unix"), "default iso"),
    "bookmakers": ("bookmakers", "query", CSV, "bookmaker keys"),
    "eventIds": ("eventIds", "query", CSV, "event ids"),
    "commenceTimeFrom": ("commenceTimeFrom", "query", {"type": "string", "format": "date-time"}, "ISO-8601"),
    "commenceTimeTo": ("commenceTimeTo", "query", {"type": "string", "format": "date-time"}, "ISO-8601"),
    "prop_markets": ("markets", "query", CSV, "player markets, e.g. player_points"),
    "props_format": ("oddsFormat", "query", enum("american", "decimal"), "default american"),
    "player": ("player", "query", STR, "substring of the player's name, case-insensitive"),
    "eventId": ("eventId", "query", STR, "one event (alias event_id)"),
    "props_limit": ("limit", "query", _int(1, 10000, 5000), "rows per page"),
    "offset": ("offset", "query", _int(0, 10000, 0), "rows to skip"),
    "match_id": ("match_id", "query", STR, "one match (alias event_id; `*` = every live match)"),
    "degraded_only": ("degraded_only", "query", {"type": "boolean", "default": False}, "stale sources only"),
    "sports": ("sports", "query", CSV, "sport keys or `all`; overrides the path"),
    "threshold": ("threshold", "query", _int(1, 200, 10), "cents on the continuous line"),
    "direction": ("direction", "query", enum("both", "toward_favorite", "toward_dog", "toward_underdog"),
                  "default both"),
    "markets": ("markets", "query", CSV, "market keys: h2h, spreads, totals, player markets"),
    "kinds": ("kinds", "query", CSV, "game, prop (props accepted); on drop streams also steam (steam frames)"),
    "event_id": ("event_id", "query", CSV, "one or more events (aliases match_id, event_ids)"),
    "recent_limit": ("limit", "query", _int(1, 1000, 100), "drops to return"),
    "heartbeat_s": ("heartbeat_s", "query", _int(1, 30, 5), "heartbeat after this many seconds of silence "
                    "(WebSocket default: streams.ws_heartbeat_s, 30)"),
    "named_events": ("named_events", "query", {"type": "boolean"}, "SSE `event:` names (default: PBP yes, "
                     "others no)"),
    "last_event_id": ("last_event_id", "query", {"type": "integer", "minimum": 0}, "resume after this id"),
    "Last-Event-ID": ("Last-Event-ID", "header", STR, "resume after this id (what browsers send; not a number: "
                      "a reset frame)"),
    "snapshot_limit": ("limit", "query", _int(1, 1000, 500), "rows in initial_state"),
    "max_age_s": ("max_age_s", "query", _int(1, 3600, 600), "snapshot rows updated within this many seconds"),
    "since": ("since", "query", {"type": "integer", "minimum": 0}, "unix ms: snapshot rows updated after it"),
    "types": ("types", "query", CSV, "/ws/live: odds_update, pbp_event, odds_drop (default all)"),
    "stream_format": ("oddsFormat", "query", enum("american", "decimal", "probability"), "prices in frames "
                      "(default american; thresholds and deltas stay in cents); alias odds_format"),
    "conflate_ms": ("conflate_ms", "query", _int(0, 120000, 0), "at most one frame per (event, book, market) "
                    "per window, the latest; its id is the highest it covers (0: off)"),
    "includeSuspended": ("includeSuspended", "query", {"type": "boolean", "default": False},
                         "also list suspended and closed prices (with `status`)"),
    "from": ("from", "query", {"type": "string"}, "unix ms or ISO-8601; not before what is kept"),
    "to": ("to", "query", {"type": "string"}, "unix ms or ISO-8601; not before `from`"),
    "event_path": ("event_id", "path", STR, "an event id (GET /v1/sports/{sport_key}/events); unknown: 404"),
    "history_format": ("oddsFormat", "query", enum("american", "decimal", "probability"), "default american"),
    "clv_bookmaker": ("bookmaker", "query", STR, "the bet's book (required)"),
    "clv_market": ("market", "query", STR, "the bet's market, e.g. h2h, spreads (required; alias market_key)"),
    "clv_outcome": ("outcome", "query", enum("home", "away", "draw", "over", "under"), "required"),
    "clv_price": ("price", "query", NUM, "the bet's price in oddsFormat (required)"),
    "clv_point": ("point", "query", NUM, "the bet's spread or total"),
    "clv_player": ("player", "query", STR, "prop markets: the player"),
    "clv_time": ("time", "query", {"type": "string"}, "when the bet was placed (unix ms or ISO-8601); before "
                 "the start"),
    "clv_reference": ("reference", "query", {"type": "string", "default": "pinnacle"}, "the reference book"),
    "deliveries_status": ("status", "query", enum("pending", "delivered", "failed", "cancelled"), "filter"),
    "deliveries_limit": ("limit", "query", _int(1, 500, 50), "rows"),
}
ODDS_QUERY = ("regions", "game_markets", "oddsFormat", "dateFormat", "bookmakers", "eventIds", "commenceTimeFrom",
              "commenceTimeTo", "includeSuspended")
FILTERS = ("event_id", "bookmakers", "markets", "kinds")
RESUME = ("heartbeat_s", "named_events", "last_event_id", "Last-Event-ID", "stream_format")
ODDS_STREAM = (*FILTERS, *RESUME, "snapshot_limit", "max_age_s", "since", "conflate_ms")
DROP_STREAM = ("sports", "threshold", "direction", *FILTERS, *RESUME)

ERRORS = {400: "invalid_param (names `param`), invalid_body, bad_request", 401: "missing_key / invalid_key "
          "(or missing_session / invalid_session)", 403: "tier_required, scope_required, forbidden_origin",
          404: "not_found", 405: "method_not_allowed", 408: "request_timeout: the body stalled",
          409: "limit_reached", 413: "payload_too_large (names `limit`)", 421: "wrong_role (cluster edge)",
          422: "invalid_rows: every row was rejected",
          429: "connection_cap / rate_limit (Retry-After)", 503: "unavailable / store_unavailable (Retry-After)"}
KEYED = (400, 401, 429, 503)
SSE = "text/event-stream"
JSON = "application/json"


@dataclass(frozen=True)
class Route:
    method: str
    paths: Sequence[str]
    summary: str
    tag: str
    auth: str = "key"  # key | session | none | websocket
    params: Sequence[str] = ()
    body: str | None = None  # a schema name
    ok: tuple[int, str, Schema | None] = (200, JSON, None)
    errors: Sequence[int] = KEYED


def _both(path: str) -> tuple[str, str]:
    return ("/v1" + path, "/v4" + path)


def _jref(name: str) -> tuple[int, str, Schema]:
    return 200, JSON, ref(name)


_FRAMES = {"oneOf": [ref(n) for n in ("Connected", "InitialState", "Heartbeat", "StreamStatus", "StreamError")]}
_WS_OK: tuple[int, str, Schema | None] = (101, "", None)

ROUTES: list[Route] = [
    Route("get", ("/healthz",), "Liveness", "operations", "none", ok=(200, JSON, obj("status", status=STR)),
          errors=()),
    Route("get", ("/readyz",), "Readiness: store open and writer running (503 with the reason if not)",
          "operations", "none", ok=(200, JSON, obj("status", status=STR, store={"type": "boolean"},
                                                   writer={"type": "boolean"})), errors=(503,)),
    Route("get", ("/metrics",), "Prometheus text format (bind to localhost or firewall it)", "operations", "none",
          ok=(200, "text/plain", STR), errors=()),
    Route("get", ("/openapi.json",), "This document", "operations", "none", ok=(200, JSON, obj()), errors=()),
    Route("get", ("/asyncapi.json",), "The AsyncAPI 3 document of the SSE and WebSocket streams", "operations",
          "none", ok=(200, JSON, obj()), errors=()),
    Route("get", _both("/sports"), "Sports (active ones unless all=true)", "rest", params=("all",),
          ok=(200, JSON, arr(ref("Sport")))),
    Route("get", _both("/sports/{sport_key}/events"), "Events of a sport", "rest",
          params=("sport_key", *ODDS_QUERY), ok=(200, JSON, arr(ref("Event")))),
    Route("get", _both("/sports/{sport_key}/odds"), "Odds in The Odds API v4 shape", "rest",
          params=("sport_key", *ODDS_QUERY), ok=(200, JSON, arr(ref("OddsEvent")))),
    Route("get", ("/v1/sports/{sport_key}/live",), "In-play events with odds", "rest",
          params=("sport_key", *ODDS_QUERY), ok=(200, JSON, arr(ref("OddsEvent")))),
    Route("get", ("/v1/sports/{sport_key}/props",), "Player props (x-result-* paging headers)", "rest",
          params=("sport_key", "prop_markets", "bookmakers", "player", "eventId", "props_format", "props_limit",
                  "offset"), ok=(200, JSON, arr(ref("OddsRow")))),
    Route("get", ("/v1/sports/{sport_key}/live/points",), "Live state of each match", "rest",
          params=("sport_key", "match_id"), ok=(200, JSON, arr(ref("LiveState")))),
    Route("get", ("/v1/sports/{sport_key}/live/source-health",), "Freshness per source", "rest",
          params=("sport_key", "degraded_only"), ok=_jref("SourceHealth")),
    Route("get", ("/v1/odds-drop/{sport_key}/recent",), "The last drops (and steam with kinds=steam), same "
          "filters as the stream, created within from/to", "rest",
          params=("drop_sport", "sports", "threshold", "direction", *FILTERS, "recent_limit", "stream_format", "from",
                  "to"), ok=(200, JSON, arr({"oneOf": [ref("OddsDrop"), ref("Steam")]}))),
    Route("get", ("/v1/sports/{sport_key}/events/{event_id}/history",), "Line history: every price change per "
          "(book, market, outcome, player, point), with open, current and close", "rest",
          params=("sport_key", "event_path", "bookmakers", "markets", "history_format", "from", "to"),
          ok=_jref("History"), errors=(*KEYED, 404)),
    Route("get", ("/v1/sports/{sport_key}/events/{event_id}/clv",), "Closing-line value of a bet against its book "
          "and a reference book", "rest",
          params=("sport_key", "event_path", "clv_bookmaker", "clv_market", "clv_outcome", "clv_price",
                  "history_format", "clv_point", "clv_player", "clv_time", "clv_reference"),
          ok=_jref("Clv"), errors=(*KEYED, 404)),
    Route("get", ("/v1/sports/{sport_key}/live/sse",), "SSE play-by-play (starter+)", "streams",
          params=("sport_key", "match_id", *RESUME), ok=(200, SSE, {"oneOf": [*_FRAMES["oneOf"], ref("PbpEvent")]}),
          errors=(*KEYED, 403)),
    Route("get", ("/v1/sse/odds/{sport_key}", "/v1/sse/hot/{sport_key}"), "SSE odds (business+)", "streams",
          params=("sport_key", *ODDS_STREAM), ok=(200, SSE, {"oneOf": [*_FRAMES["oneOf"], ref("OddsUpdate"),
                                                                       ref("MarketStatus")]}),
          errors=(*KEYED, 403)),
    Route("get", ("/v1/odds-drop/{sport_key}",), "SSE drops (business+); kinds=steam adds steam frames", "streams",
          params=("drop_sport", *DROP_STREAM), ok=(200, SSE, {"oneOf": [*_FRAMES["oneOf"], ref("OddsDrop"),
                                                                        ref("Steam")]}),
          errors=(*KEYED, 403)),
    Route("get", ("/v1/steam/{sport_key}",), "SSE steam moves (business+): the drop stream's steam frames",
          "streams", params=("drop_sport", *DROP_STREAM), ok=(200, SSE, {"oneOf": [*_FRAMES["oneOf"], ref("Steam")]}),
          errors=(*KEYED, 403)),
    Route("get", ("/ws/odds/{sport_key}", "/v1/ws/odds/{sport_key}"), "WebSocket odds (business+): see "
          "/asyncapi.json. Refusals come after the upgrade as close codes", "streams", "websocket",
          params=("sport_key", *ODDS_STREAM), ok=_WS_OK, errors=()),
    Route("get", ("/ws/live/{sport_key}", "/v1/ws/live/{sport_key}"), "WebSocket in-play data (key or session "
          "cookie, business+): see /asyncapi.json", "streams", "websocket",
          params=("sport_key", *FILTERS, "threshold", "direction", "types", *RESUME, "conflate_ms"), ok=_WS_OK,
          errors=()),
    Route("post", ("/v1/ingest/odds",), "Push prices: flat quotes or The Odds API v4 events (ingest scope)",
          "ingest", body="IngestOdds", ok=_jref("IngestResult"), errors=(*KEYED, 403, 408, 413, 421, 422)),
    Route("post", ("/v1/ingest/pbp",), "Push plays (ingest scope)", "ingest", body="IngestPbp",
          ok=_jref("IngestResult"), errors=(*KEYED, 403, 408, 413, 421, 422)),
    Route("post", ("/v1/session",), "Dashboard login: sets the gw_session cookie (body api_key, or a key header)",
          "dashboard", "none", body="Login", ok=_jref("Session"), errors=(400, 401, 403)),
    Route("get", ("/v1/session",), "The current session", "dashboard", "session", ok=_jref("Session"),
          errors=(401, 403)),
    Route("delete", ("/v1/session",), "Log out (clears the cookie)", "dashboard", "none",
          ok=(200, JSON, obj("logged_out", logged_out={"type": "boolean"})), errors=(403,)),
    Route("get", ("/dashboard", "/dashboard/"), "The dashboard page (/dashboard/ redirects)", "dashboard", "none",
          ok=(200, "text/html", STR), errors=()),
    Route("get", ("/dashboard/static/{name}",), "The dashboard's own CSS and JavaScript", "dashboard", "none",
          params=("name",), ok=(200, "text/plain", STR), errors=(404,)),
    Route("get", ("/dashboard/api/sports",), "Active sports (same-origin session)", "dashboard", "session",
          ok=(200, JSON, arr(ref("Sport"))), errors=(401, 403, 429)),
    Route("get", ("/dashboard/api/sports/{sport_key}/source-health",), "Source health (session)", "dashboard",
          "session", params=("sport_key",), ok=_jref("SourceHealth"), errors=(400, 401, 403, 429)),
    Route("get", ("/dashboard/api/sports/{sport_key}/events/{event_id}/history",), "Line history of an event "
          "(session; the sparkline of a clicked cell)", "dashboard", "session",
          params=("sport_key", "event_path", "bookmakers", "markets", "history_format", "from", "to"),
          ok=_jref("History"), errors=(400, 401, 403, 404, 429)),
    Route("get", ("/dashboard/api/sports/{sport_key}/upcoming",), "Upcoming games (session)", "dashboard",
          "session", params=("sport_key",), ok=(200, JSON, arr(ref("Event"))), errors=(400, 401, 403, 429)),
    Route("post", ("/v1/webhooks",), "Create a webhook (business+; the secret is shown once)", "webhooks",
          body="WebhookInput", ok=(201, JSON, ref("Webhook")), errors=(*KEYED, 403, 409, 421)),
    Route("get", ("/v1/webhooks",), "This key's webhooks", "webhooks", ok=_jref("WebhookList"),
          errors=(*KEYED, 403, 421)),
    Route("get", ("/v1/webhooks/{webhook_id}",), "One webhook", "webhooks", params=("webhook_id",),
          ok=_jref("Webhook"), errors=(*KEYED, 403, 404, 421)),
    Route("patch", ("/v1/webhooks/{webhook_id}",), "Change fields; is_active pauses and resumes", "webhooks",
          params=("webhook_id",), body="WebhookInput", ok=_jref("Webhook"), errors=(*KEYED, 403, 404, 421)),
    Route("delete", ("/v1/webhooks/{webhook_id}",), "Delete a webhook", "webhooks", params=("webhook_id",),
          ok=(200, JSON, obj("id deleted", id=INT, deleted={"type": "boolean"})), errors=(*KEYED, 403, 404, 421)),
    Route("post", ("/v1/webhooks/{webhook_id}/rotate-secret",), "A new secret, in force at once", "webhooks",
          params=("webhook_id",), ok=_jref("Webhook"), errors=(*KEYED, 403, 404, 421)),
    Route("post", ("/v1/webhooks/{webhook_id}/test",), "Send a test event now; what the URL answered",
          "webhooks", params=("webhook_id",), ok=_jref("WebhookTestResult"), errors=(*KEYED, 403, 404, 421)),
    Route("get", ("/v1/webhooks/{webhook_id}/deliveries",), "Recent deliveries (7 days)", "webhooks",
          params=("webhook_id", "deliveries_status", "deliveries_limit"), ok=_jref("Deliveries"),
          errors=(*KEYED, 403, 404, 421)),
]
PARAMS["name"] = ("name", "path", STR, "a file name, e.g. dashboard.js")
BODIES: dict[str, Schema] = {
    "IngestOdds": arr({"oneOf": [ref("FlatQuote"), ref("OddsEvent")]}),
    "IngestPbp": arr(ref("PbpRow")),
    "Login": obj("api_key", api_key=STR),
    "WebhookInput": ref("WebhookInput"),
}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "key": [{"ApiKeyHeader": []}, {"Bearer": []}, {"ApiKeyQuery": []}, {"ApiKeyQueryAlt": []}],
    "session": [{"SessionCookie": []}],
    "websocket": [{"ApiKeyHeader": []}, {"Bearer": []}, {"ApiKeyQuery": []}, {"ApiKeyQueryAlt": []},
                  {"SessionCookie": []}],
    "none": [],
}
WS_NOTE = ("The upgrade is always accepted; a refusal is an error frame then a close code: 4003 missing key, "
           "1008 invalid key / bad parameter / foreign Origin, 4001 tier too low or session expired, 4002 "
           "connection cap, 4008 slow consumer, 1001 going away, 1011 server error or ping timeout, 1002 protocol "
           "error, 1009 message too big. The key may also come as the subprotocol `apikey.KEY` (echoed).")


def _operation(route: Route, path: str) -> dict[str, Any]:
    words = "".join(c if c.isalnum() else "_" for c in path.replace("{", "").replace("}", ""))
    op: dict[str, Any] = {"summary": route.summary, "tags": [route.tag], "security": SECURITY[route.auth],
                          "operationId": f"{route.method}{words}{'_slash' if path.endswith('/') else ''}"}
    params = [PARAMS[p] for p in route.params if PARAMS[p][1] != "path" or "{" + PARAMS[p][0] + "}" in path]
    if params:
        op["parameters"] = [{"name": n, "in": where, "required": where == "path", "schema": schema,
                             "description": desc} for n, where, schema, desc in params]
    if route.body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": BODIES[route.body]}}}
    status, media, schema = route.ok
    if status == 101:
        op["description"] = WS_NOTE
        op["responses"] = {"101": {"description": "Switching Protocols: frames as in /asyncapi.json"}}
    else:
        ok: dict[str, Any] = {"description": "OK" if status == 200 else "Created"}
        if schema is not None:
            ok["content"] = {media: {"schema": schema}}
        op["responses"] = {str(status): ok, **{str(e): {"$ref": f"#/components/responses/E{e}"}
                                                for e in route.errors}}
    return op


def openapi(server_url: str = "/") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        for path in route.paths:
            paths.setdefault(path, {})[route.method] = _operation(route, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "gateway", "version": VERSION, "description": "Real-time sports odds: REST in The "
                 "Odds API v4 shapes, SSE and WebSocket streams (see /asyncapi.json), webhooks. Errors share one "
                 "envelope; every response carries X-Request-ID."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "webhooks": {
            "odds_drop": {"post": {"summary": "A drop delivered to a webhook URL (format json; slack and discord "
                                   "formats post one line)", "parameters": _delivery_headers(),
                                   "requestBody": {"content": {JSON: {"schema": {"oneOf": [
                                       ref("WebhookDelivery"), ref("SlackMessage"), ref("DiscordMessage")]}}}},
                                   "responses": {"200": {"description": "any 2xx within 10 s is success; "
                                                                        "otherwise retried (+30 s, +5 min)"}}}},
            "steam": {"post": {"summary": "A steam move delivered to a webhook whose kinds include steam (event_type "
                               "steam; data: the steam frame)", "parameters": _delivery_headers(),
                               "requestBody": {"content": {JSON: {"schema": {"oneOf": [
                                   ref("WebhookDelivery"), ref("SlackMessage"), ref("DiscordMessage")]}}}},
                               "responses": {"200": {"description": "as odds_drop"}}}},
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"E{code}": {"description": text, "content": {JSON: {"schema": ref("Error")}}}
                          for code, text in ERRORS.items()},
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
                "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "apiKey"},
                "ApiKeyQueryAlt": {"type": "apiKey", "in": "query", "name": "api_key"},
                "SessionCookie": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                                  "description": "from POST /v1/session; same-origin requests only"},
            },
        },
    }


def _delivery_headers() -> list[dict[str, Any]]:
    return [{"name": n, "in": "header", "required": True, "schema": STR, "description": d} for n, d in (
        ("X-Gateway-Signature", "t=<unix s>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' with the secret>"),
        ("X-Gateway-Delivery-Id", "the same on every attempt: deduplicate on it"),
        ("X-Gateway-Attempt", "1, 2, 3"), ("X-Gateway-Webhook-Id", "the webhook"),
        ("X-Gateway-Event-Type", "odds_drop, steam or test"))]


# -- AsyncAPI: one channel per stream route, the frames it sends, the messages it takes -------

SERVER_FRAMES = ("Connected", "InitialState", "Heartbeat", "StreamStatus", "StreamError")
WS_REPLIES = ("Pong", "Subscribed", "Unsubscribed")
CLIENT_MESSAGES = ("Subscribe", "Unsubscribe", "Resume", "Ping")


@dataclass(frozen=True)
class Channel:
    name: str
    address: str
    transport: str  # sse | ws
    description: str
    frames: Sequence[str]
    params: Sequence[str]


CHANNELS = [
    Channel("pbp", "/v1/sports/{sport_key}/live/sse", "sse", "Play-by-play (starter+); `event: pbp_event`",
            ("PbpEvent",), ("match_id", *RESUME)),
    Channel("odds", "/v1/sse/odds/{sport_key}", "sse", "Odds (business+)", ("OddsUpdate", "MarketStatus"),
            ODDS_STREAM),
    Channel("hot", "/v1/sse/hot/{sport_key}", "sse", "Odds (business+), the same feed as /v1/sse/odds",
            ("OddsUpdate", "MarketStatus"), ODDS_STREAM),
    Channel("drops", "/v1/odds-drop/{sport_key}", "sse", "Drops (business+); sport_key may be `all` or `multi`; "
            "kinds=steam adds steam frames", ("OddsDrop", "Steam"), DROP_STREAM),
    Channel("steam", "/v1/steam/{sport_key}", "sse", "Steam moves (business+): the drop stream's steam frames",
            ("Steam",), DROP_STREAM),
    Channel("ws_odds", "/ws/odds/{sport_key}", "ws", "WebSocket odds (business+); also /v1/ws/odds/{sport_key}",
            ("OddsUpdate", "MarketStatus"), ODDS_STREAM),
    Channel("ws_odds_v1", "/v1/ws/odds/{sport_key}", "ws", "= /ws/odds/{sport_key}", ("OddsUpdate", "MarketStatus"),
            ODDS_STREAM),
    Channel("ws_live", "/ws/live/{sport_key}", "ws", "WebSocket in-play data (key or session cookie, business+); "
            "types=steam adds steam frames", ("OddsUpdate", "MarketStatus", "PbpEvent", "OddsDrop", "Steam"),
            (*FILTERS, "threshold", "direction", "types", *RESUME, "conflate_ms")),
    Channel("ws_live_v1", "/v1/ws/live/{sport_key}", "ws", "= /ws/live/{sport_key}",
            ("OddsUpdate", "MarketStatus", "PbpEvent", "OddsDrop", "Steam"),
            (*FILTERS, "threshold", "direction", "types", *RESUME, "conflate_ms")),
]


def _query_schema(params: Sequence[str]) -> Schema:
    props = {PARAMS[p][0]: {**PARAMS[p][2], "description": PARAMS[p][3]} for p in params if PARAMS[p][1] == "query"}
    return {"type": "object", "properties": props}


def asyncapi(host: str = "localhost:8080", secure: bool = False) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ch in CHANNELS:
        sent = [*SERVER_FRAMES, *ch.frames, *(WS_REPLIES if ch.transport == "ws" else ())]
        messages = {m: {"$ref": f"#/components/messages/{m}"} for m in sent}
        if ch.transport == "ws":
            messages.update({m: {"$ref": f"#/components/messages/{m}"} for m in CLIENT_MESSAGES})
        channel: dict[str, Any] = {"address": ch.address, "description": ch.description, "messages": messages,
                                   "servers": [{"$ref": f"#/servers/{ch.transport}"}],
                                   "parameters": {"sport_key": {"description": PARAMS["sport_key"][3]}}}
        if ch.transport == "ws":
            channel["bindings"] = {"ws": {"method": "GET", "query": _query_schema(ch.params)}}
        else:
            channel["description"] += f". Query: {', '.join(PARAMS[p][0] for p in ch.params)}"
        channels[ch.name] = channel
        operations[f"{ch.name}_frames"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{ch.name}"},
            "summary": "Frames the gateway sends: connected, then initial_state where the stream has one, then "
                       "live frames, heartbeats when idle",
            "messages": [{"$ref": f"#/channels/{ch.name}/messages/{m}"} for m in sent]}
        if ch.transport == "ws":
            operations[f"{ch.name}_client"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{ch.name}"},
                "summary": "Messages the gateway takes from the client",
                "messages": [{"$ref": f"#/channels/{ch.name}/messages/{m}"} for m in CLIENT_MESSAGES]}
    names = (*SERVER_FRAMES, "OddsUpdate", "MarketStatus", "OddsDrop", "Steam", "PbpEvent", *WS_REPLIES,
             *CLIENT_MESSAGES)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "gateway streams", "version": VERSION, "description": "SSE and WebSocket streams. "
                 "Every frame is one JSON object with a `type`; resumable frames carry `id` (SSE: also the `id:` "
                 "line): reconnect with Last-Event-ID or last_event_id to replay, with no gap and no duplicate. "
                 + WS_NOTE},
        "servers": {"sse": {"host": host, "protocol": "https" if secure else "http",
                            "description": "Server-Sent Events (text/event-stream)"},
                    "ws": {"host": host, "protocol": "wss" if secure else "ws", "description": "WebSocket"}},
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": SCHEMAS,
            "messages": {n: {"name": _type_of(n), "title": n, "contentType": JSON,
                             "payload": {"$ref": f"#/components/schemas/{n}"}} for n in names},
        },
    }


def _type_of(schema_name: str) -> str:
    schema = SCHEMAS[schema_name]
    parts = schema.get("allOf", [schema])
    return str(parts[0]["properties"]["type"]["const"])


@bp.get("/openapi.json")
async def openapi_json() -> Response:
    return jsonify(openapi())


@bp.get("/asyncapi.json")
async def asyncapi_json() -> Response:
    return jsonify(asyncapi(request.host or "localhost", secure=request.scheme == "https"))

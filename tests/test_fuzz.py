"""Bad input at scale (hypothesis): query parameters, ingest bodies and WebSocket messages.

The only acceptable outcomes are 2xx/4xx answers and error frames: never a 500, never a
crash, never a stored bad row. One gateway serves the whole module (a background thread).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.testing import SyncGatewayHandle, gateway_config, run_gateway

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ROUTES = [
    "/v1/sports", "/v4/sports/basketball_nba/odds", "/v1/sports/basketball_nba/events",
    "/v1/sports/basketball_nba/props", "/v1/sports/basketball_nba/live", "/v1/sports/basketball_nba/live/points",
    "/v1/sports/basketball_nba/live/source-health", "/v1/odds-drop/all/recent",
    "/v1/odds-drop/basketball_nba", "/v1/odds-drop/multi", "/v1/sse/odds/basketball_nba",
    "/v1/sports/basketball_nba/live/sse", "/v1/sports/nope_sport/odds",
]
PARAMS = ["threshold", "direction", "bookmakers", "markets", "kinds", "event_id", "sports", "heartbeat_s",
          "limit", "max_age_s", "since", "last_event_id", "named_events", "oddsFormat", "dateFormat", "regions",
          "eventIds", "commenceTimeFrom", "commenceTimeTo", "offset", "player", "match_id", "degraded_only", "all"]
junk = st.one_of(st.text(max_size=30), st.integers(-10**20, 10**20).map(str), st.sampled_from(
    ["", "0", "-1", "201", "abc", "both", "toward_dog", "pinnacle,nobody", "h2h", "game,props", "*", "all",
     "true", "2026-05-12T22:30:00Z", "1e309", "NaN", "\x00", "%", ",,,"]))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncGatewayHandle]:
    # rate limits this suite cannot reach: it checks answers to bad input, not the limiters
    config = gateway_config(tmp_path_factory.mktemp("fuzz"), **{
        "tiers": {"enterprise": {"max_connections": 1000, "pbp_sse": True, "odds_streams": True,
                                 "requests_per_minute": 10_000_000}},
        "streams": {"ws_messages_per_s": 1_000_000.0, "ws_message_burst": 1_000_000.0}})
    with run_gateway(config) as handle:
        handle.move("e1", "pinnacle", "h2h", "home", -110, -120)
        yield handle


@pytest.fixture(scope="module")
def http(gw: SyncGatewayHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.base_url, timeout=httpx.Timeout(10, read=10)) as client:
        yield client


@FUZZ
@given(route=st.sampled_from(ROUTES), params=st.dictionaries(st.sampled_from(PARAMS), junk, max_size=6))
def test_query_params_never_500(gw: SyncGatewayHandle, http: httpx.Client, route: str, params: dict[str, str]) -> None:
    with http.stream("GET", route, params={**params, "apiKey": gw.key}) as resp:
        status = resp.status_code  # a stream that opened is closed at once; its slot must come back
    assert status in (200, 400, 404), (route, params, status)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["sport_key", "event_id", "home_team", "away_team", "commence_time", "bookmaker", "market_key", "outcome",
          "price", "point", "player", "odds_format", "observed_at_ms"]
GOOD = {"sport_key": "basketball_nba", "event_id": "fz", "home_team": "A", "away_team": "B",
        "commence_time": "2026-05-12T22:30:00Z", "bookmaker": "pinnacle", "market_key": "h2h", "outcome": "home",
        "price": -110}
quote_like = st.fixed_dictionaries({}, optional={f: st.one_of(json_values, st.just(GOOD.get(f))) for f in FIELDS})


@FUZZ
@given(body=st.one_of(json_values, st.lists(quote_like, max_size=5)))
def test_ingest_bodies_never_500(gw: SyncGatewayHandle, http: httpx.Client, body: Any) -> None:
    r = http.post("/v1/ingest/odds", content=json.dumps(body), headers={"X-API-Key": gw.key})
    assert r.status_code in (200, 400, 422), (body, r.status_code, r.text)
    r = http.post("/v1/ingest/pbp", content=json.dumps(body), headers={"X-API-Key": gw.key})
    assert r.status_code in (200, 400, 422), (body, r.status_code, r.text)


def test_no_bad_row_was_stored(gw: SyncGatewayHandle) -> None:
    """Runs after the ingest fuzz (file order): every stored quote is a valid price."""
    conn = sqlite3.connect(gw.gateway.store.path)
    try:
        rows = conn.execute("SELECT market_key, outcome, price, point, player FROM quotes").fetchall()
    finally:
        conn.close()
    assert rows
    for market, outcome, price, point, player in rows:
        assert price <= -100 or price >= 100
        assert outcome in ("home", "away", "draw", "over", "under")
        assert (point is None) == (market == "h2h")
        assert (player != "") == (market not in ("h2h", "spreads", "totals"))


@pytest.fixture(scope="module")
def ws(gw: SyncGatewayHandle) -> Iterator[Any]:
    from websockets.sync.client import connect

    with connect(f"{gw.ws_url}/ws/odds/basketball_nba?apiKey={gw.key}&heartbeat_s=30", open_timeout=10) as sock:
        assert json.loads(sock.recv(timeout=10))["type"] == "connected"
        yield sock


messages = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["subscribe", "unsubscribe", "resume", "ping", "nope"])},
                          optional={"event_id": json_values, "event_ids": json_values, "bookmakers": json_values,
                                    "markets": json_values, "kinds": json_values, "last_event_id": json_values,
                                    }).map(json.dumps),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages)
def test_ws_messages_get_a_reply_and_the_socket_stays_open(ws: Any, msg: str) -> None:
    ws.send(msg)
    ws.send('{"type":"ping"}')
    replies = []
    while True:  # everything up to our pong is the reply to `msg` (or live frames)
        raw = ws.recv(timeout=10)
        try:
            frame = json.loads(raw)
        except ValueError:
            raise AssertionError(f"not one JSON object: {raw!r} (after sending {msg!r})") from None
        if frame.get("type") == "pong":
            break
        replies.append(frame["type"])
    assert set(replies) <= {"error", "subscribed", "unsubscribed", "connected", "initial_state", "stream_status",
                            "odds_update", "heartbeat", "pong"}, (msg, replies)

"""Bad input at scale (hypothesis): query parameters, ingest bodies and WebSocket messages.

The only acceptable outcomes are 2xx/4xx answers and error frames: never a 500, never a
crash, never a stored bad row. One gateway serves the whole module (a background thread).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.testing import SyncGatewayHandle, gateway_config, run_gateway

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_EXTREME = settings(max_examples=300, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

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
# Structural extremes (issues 13.7, 14.8): huge numbers, long and wide values, deep nesting.
# Strategies draw small (kind, size) specs and the tests build the text, so a failing
# example stays readable.
BUILD: dict[str, Callable[[int], str]] = {
    "deep_list": lambda n: "[" * n + "]" * n, "deep_object": lambda n: '{"a":' * n + "1" + "}" * n,
    "open_lists": lambda n: "[" * n, "huge_int": lambda n: "9" * n, "huge_negative": lambda n: "-" + "9" * n,
    "long_string": lambda n: json.dumps("x" * n), "wide_list": lambda n: json.dumps(list(range(n))),
    "wide_object": lambda n: json.dumps({f"k{i}": i for i in range(n)}),
    "csv": lambda n: ",".join(["pinnacle"] * n), "letters": lambda n: "x" * n,
}
SIZES = {"deep_list": 100_000, "deep_object": 5000, "open_lists": 100_000, "huge_int": 6000, "huge_negative": 6000,
         "long_string": 300_000, "wide_list": 20_000, "wide_object": 20_000, "csv": 1300, "letters": 12_000}
LITERALS = ["1e308", "1e309", "-1e309", "1.7976931348623157e308", "5e-324", "-0.0", "0.1e-999", '"\\ud800"',
            '"Home \\udfff"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\ud800\\ud800"', '"\\udc00\\ud800"', '" "']


def spec(kinds: list[str], max_size: int = 10**6) -> st.SearchStrategy[tuple[str, int]]:
    return st.tuples(st.sampled_from(kinds), st.integers(1, max_size))


def build(kind: str, size: int, cap: int | None = None) -> str:
    return BUILD[kind](1 + (size - 1) % min(SIZES[kind], cap or SIZES[kind]))


# raw query strings: percent-escapes of invalid UTF-8 and of a UTF-8-encoded surrogate, repeated names
ESCAPES = ["%ff", "%ed%a0%80", "%c3", "%00", "%25", "%2C%2C", "a%26b%3Dc", "%e2%82", "%f4%90%80%80"]
raw_query = st.lists(st.tuples(st.sampled_from(PARAMS), st.integers(0, 2 * 10**5)), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncGatewayHandle]:
    # rate limits this suite cannot reach: it checks answers to bad input, not the limiters
    config = gateway_config(tmp_path_factory.mktemp("fuzz"), **{
        "tiers": {"enterprise": {"max_connections": 1000, "pbp_sse": True, "odds_streams": True,
                                 "requests_per_minute": 10_000_000, "ingest_requests_per_s": 10_000_000,
                                 "ingest_rows_per_s": 10_000_000}},
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


@FUZZ_EXTREME
@given(route=st.sampled_from(ROUTES), specs=st.dictionaries(st.sampled_from(PARAMS), spec(
    ["huge_int", "huge_negative", "letters", "csv", "open_lists"]), max_size=4), raw=raw_query)
def test_extreme_query_params_never_500(gw: SyncGatewayHandle, http: httpx.Client, route: str,
                                        specs: dict[str, tuple[str, int]], raw: list[tuple[str, int]]) -> None:
    params = {name: build(*s, cap=4000) for name, s in specs.items()}  # httpx refuses queries past 64 KiB
    with http.stream("GET", route, params={**params, "apiKey": gw.key}) as resp:
        assert resp.status_code in (200, 400, 404, 414, 431), (route, specs, resp.status_code)
    query = "&".join(f"{name}={ESCAPES[n % len(ESCAPES)] if n < 10**5 else '%5B' * (n % 2000)}" for name, n in raw)
    with http.stream("GET", f"{route}?{query}&apiKey={gw.key}") as resp:
        assert resp.status_code in (200, 400, 404, 414, 431), (route, query[:200])


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


GOOD_PLAY = {"match_id": "fz_m", "sport_key": "basketball_nba", "source": "fuzz", "event_type": "made_3",
             "team_or_player_a": "A", "team_or_player_b": "B", "score_a": 3, "score_b": "0",
             "description": "a three", "state": {"period": 1, "clock": "11:40"}, "occurred_at_ms": 1778214012700}
PLAY_FIELDS = [*GOOD_PLAY, "role", "captured_at_ms", "state.status"]
JSON_EXTREMES = ["deep_list", "deep_object", "open_lists", "huge_int", "huge_negative", "long_string", "wide_list",
                 "wide_object"]
extreme_json = st.one_of(spec(JSON_EXTREMES), st.tuples(st.just("literal"), st.integers(0, len(LITERALS) - 1)))


def fragment_of(s: tuple[str, int], cap: int | None = None) -> str:
    return LITERALS[s[1]] if s[0] == "literal" else build(*s, cap=cap)


bad_bytes = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xef\xbb\xbf"])


def _with_field(row: dict[str, Any], field: str, fragment: str) -> str:
    """`[row]` as JSON text with one field's value (`state.x` inside state) replaced by `fragment`."""
    row = json.loads(json.dumps(row))
    target, name = (row.setdefault("state", {}), field[6:]) if field.startswith("state.") else (row, field)
    target[name] = "@@FRAGMENT@@"
    return json.dumps([row, GOOD if "match_id" not in row else GOOD_PLAY]).replace('"@@FRAGMENT@@"', fragment, 1)


@FUZZ_EXTREME
@given(kind=st.sampled_from(["odds", "pbp"]), field_index=st.integers(0, 100), extreme=extreme_json,
       shape=st.sampled_from(["field", "body", "wrapped", "bytes"]), junk=bad_bytes, cut=st.integers(0, 10**6))
def test_structural_extremes_in_ingest_bodies_never_500(gw: SyncGatewayHandle, http: httpx.Client, kind: str,
                                                        field_index: int, extreme: tuple[str, int], shape: str,
                                                        junk: bytes, cut: int) -> None:
    fragment = fragment_of(extreme)
    fields = FIELDS if kind == "odds" else PLAY_FIELDS
    good = GOOD if kind == "odds" else GOOD_PLAY
    text = {"field": lambda: _with_field(good, fields[field_index % len(fields)], fragment),
            "body": lambda: fragment, "wrapped": lambda: f'{{"data": [{fragment}]}}',
            "bytes": lambda: _with_field(good, fields[field_index % len(fields)], '"ok"')}[shape]()
    body = text.encode()
    if shape == "bytes":  # invalid UTF-8 somewhere in an otherwise good body
        at = cut % (len(body) + 1)
        body = body[:at] + junk + body[at:]
    r = http.post(f"/v1/ingest/{kind}", content=body, headers={"X-API-Key": gw.key})
    assert r.status_code in (200, 400, 413, 422), (kind, shape, text[:200], r.status_code, r.text[:300])
    if r.status_code == 400:
        assert r.json()["error"] == "invalid_body"


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
    conn = sqlite3.connect(gw.gateway.store.path)
    try:
        conn.text_factory = bytes  # read what is stored, not what Python would make of it
        texts = conn.execute("SELECT event_id, bookmaker, player FROM quotes").fetchall()
        texts += conn.execute("SELECT id, home_team, away_team FROM events").fetchall()
        plays = conn.execute("SELECT match_id, score_a, score_b, period, clock, last_play FROM live_state").fetchall()
    finally:
        conn.close()
    for value in (v for row in [*texts, *plays] for v in row if isinstance(v, bytes)):
        value.decode("utf-8")  # every stored string is valid UTF-8 (no surrogate got through)
    for _, score_a, score_b, period, clock, _ in plays:
        assert len(score_a) <= 20 and len(score_b) <= 20 and (clock is None or len(clock) <= 40)
        assert period is None or (period.isdigit() and int(period) <= 999)


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


def _ws_message(fragment: str, where: str) -> str:
    return {"message": fragment, "event_id": f'{{"type":"subscribe","event_id":{fragment}}}',
            "bookmakers": f'{{"type":"subscribe","bookmakers":[{fragment}]}}',
            "resume": f'{{"type":"resume","last_event_id":{fragment}}}'}[where]


extreme_messages = st.one_of(
    st.tuples(extreme_json, st.sampled_from(["message", "event_id", "bookmakers", "resume"])),
    st.binary(max_size=40).map(lambda b: b"\xff" + b),  # invalid UTF-8 in a binary frame
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(msg=extreme_messages)
def test_ws_structural_extremes_get_a_reply_and_the_socket_stays_open(
        ws: Any, msg: tuple[tuple[str, int], str] | bytes) -> None:
    text = msg if isinstance(msg, bytes) else _ws_message(fragment_of(msg[0], cap=70_000), msg[1])
    test_ws_messages_get_a_reply_and_the_socket_stays_open.hypothesis.inner_test(ws, text)  # type: ignore[attr-defined]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages)
def test_ws_messages_get_a_reply_and_the_socket_stays_open(ws: Any, msg: str | bytes) -> None:
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

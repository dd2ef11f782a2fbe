"""Hostile input against a real gateway (issues 14.5, 14.7, 14.8, 13.7): strings the store
cannot take, nesting, row caps, keys in logs, duplicate keys, and what frames report."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import trio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from gateway.web.ingest import MAX_ROWS

from .conftest import Running
from .helpers import next_of, push, quote, sse_events

T = TypeVar("T")
PLAY: dict[str, Any] = {
    "match_id": "0042500222", "sport_key": "basketball_nba", "source": "nba_live", "role": "primary",
    "event_type": "made_3", "team_or_player_a": "Lakers", "team_or_player_b": "Thunder", "score_a": "107",
    "score_b": "125", "description": "C. Holmgren 3PT JUMPER from 26ft", "state": {"period": 4, "clock": "PT2:14"},
    "occurred_at_ms": 1778214012700,
}


def ws_url(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


def recv(sock: Any) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(sock.recv(timeout=10))
    return msg


async def in_ws(url: str, talk: Callable[[Any], T], *, headers: list[tuple[str, str]] | None = None,
                protocols: list[str] | None = None) -> T:
    """Run `talk(connection)` on a `websockets` client in a thread (trio-websocket's reader can
    fail on a ping that crosses its close, which cancels the test task)."""
    def run() -> T:
        with connect(url, open_timeout=10, additional_headers=headers,
                     subprotocols=[Subprotocol(p) for p in protocols] if protocols else None) as sock:
            return talk(sock)
    return await trio.to_thread.run_sync(run)


def close_code(sock: Any) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            sock.recv(timeout=10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


def raw_json(rows: Any, needle: str, replacement: str) -> bytes:
    """JSON text with a value swapped for raw JSON text (an escape json.dumps would not write)."""
    text = json.dumps(rows)
    assert needle in text
    return text.replace(needle, replacement).encode()


# -- 14.5: a string the store cannot take is a rejected row, not a lost batch ---------------------

async def test_lone_surrogates_are_rejected_rows_and_the_good_rows_are_stored(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("business")
    rows = [quote(-110, event="ev_good1"), quote(-110, event="ev_bad", home_team="HOME_X"),
            quote(-115, event="ev_good2"),
            quote(-110, event="ev_bad2", player="PLAYER_X", market="player_points", point=20.5, outcome="over")]
    body = raw_json(rows, '"HOME_X"', '"Home \\ud800"').replace(b'"PLAYER_X"', b'"P \\udfff"')
    plays = [dict(PLAY), {**PLAY, "match_id": "m_bad", "description": "DESC_X"}, {**PLAY, "match_id": "m_good2"}]
    pbp_body = raw_json(plays, '"DESC_X"', '"made \\ud83d"')
    headers = {"X-API-Key": ingest, "Content-Type": "application/json"}
    with trio.fail_after(15):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/odds", content=body, headers=headers)
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["accepted"] == 2
            assert {e["index"]: e["error"].split(":")[0] for e in got["rejected"]} == {1: "home_team", 3: "player"}
            assert all("surrogate" in e["error"] for e in got["rejected"])
            r = await c.post("/v1/ingest/pbp", content=pbp_body, headers=headers)
            assert (r.json()["accepted"], r.json()["rejected"][0]["index"]) == (2, 1)
            assert r.json()["rejected"][0]["error"].startswith("description:")
            # a TOA event list: the bad event is rejected, the good one kept whole
            toa = [{"id": "toa_good", "sport_key": "soccer_epl", "commence_time": "2026-05-12T14:00:00Z",
                    "home_team": "Arsenal", "away_team": "Chelsea", "bookmakers": [{"key": "bet365", "markets": [
                        {"key": "h2h", "outcomes": [{"name": "Arsenal", "price": 1.91},
                                                    {"name": "Chelsea", "price": 4.2}]}]}]}]
            toa.append({**toa[0], "id": "toa_bad", "away_team": "AWAY_X"})
            r = await c.post("/v1/ingest/odds", content=raw_json(toa, '"AWAY_X"', '"Chelsea \\udc00"'), headers=headers)
            assert r.json()["accepted"] == 2 and {e["index"] for e in r.json()["rejected"]} == {1}
            assert "away_team: contains a lone UTF-16 surrogate" in r.json()["rejected"][0]["error"]
            # what was accepted is stored and served; later pushes and new streams still work
            odds = (await c.get("/v1/sports/basketball_nba/odds", params={"apiKey": key})).json()
            assert {e["id"] for e in odds} == {"ev_good1", "ev_good2"}
            await push(c, ingest, [quote(-120, event="ev_good1")])
            async with c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": key}) as resp:
                snapshot = await next_of(sse_events(resp), "initial_state")
            assert {row["event_id"] for row in snapshot.data["data"]} == {"ev_good1", "ev_good2"}
            points = (await c.get("/v1/sports/basketball_nba/live/points", params={"apiKey": key})).json()
            assert {p["match_id"] for p in points} == {"0042500222", "m_good2"}


async def test_huge_and_unbounded_values_are_rejected_with_their_field(gateway: Running) -> None:
    ingest = gateway.key(scopes=("ingest",))
    big = "9" * 4001
    body = raw_json([PLAY, {**PLAY, "match_id": "m2", "score_a": 0}], '"score_a": 0', f'"score_a": {big}')
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/pbp", content=body, headers={"X-API-Key": ingest})
            assert r.status_code == 200 and r.json()["accepted"] == 1
            reason = r.json()["rejected"][0]["error"]
            assert reason.startswith("score_a: must be between 0 and") and len(reason) < 100
            r = await c.post("/v1/ingest/pbp", content=b'[{"score_a": 9' + b"9" * 5000 + b"}]",
                             headers={"X-API-Key": ingest})
            assert (r.status_code, r.json()["error"]) == (400, "invalid_body")  # past Python's digit limit


# -- 14.8: nesting, size, bytes ---------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


async def test_deep_nesting_is_a_400_on_every_json_route(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("business")
    with trio.fail_after(20):
        async with gateway.client() as c:
            hook = (await c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"},
                                 headers={"X-API-Key": key})).json()
            routes = [("POST", "/v1/ingest/odds", ingest), ("POST", "/v1/ingest/pbp", ingest),
                      ("POST", "/v1/webhooks", key), ("PATCH", f"/v1/webhooks/{hook['id']}", key),
                      ("POST", "/v1/session", None)]
            for method, path, k in routes:
                for body in (DEEP, b"[" * 100_000, b'{"a":' * 40 + b"1" + b"}" * 40):
                    headers = {"Content-Type": "application/json", **({"X-API-Key": k} if k else {})}
                    r = await c.request(method, path, content=body, headers=headers)
                    assert (r.status_code, r.json()["error"]) == (400, "invalid_body"), (path, r.text[:200])
                    assert "nested too deeply" in r.json()["message"]
                r = await c.request(method, path, content=b'{"url": "\xff"}',
                                    headers={"Content-Type": "application/json", **({"X-API-Key": k} if k else {})})
                assert (r.status_code, r.json()["error"]) == (400, "invalid_body")
                assert "not UTF-8" in r.json()["message"]
            r = await c.post("/v1/webhooks", content=b'{"url": "http://127.0.0.1:9/x", "description": "\\ud800"}',
                             headers={"X-API-Key": key})
            assert r.status_code == 400 and "description" in r.json()["message"] and "surrogate" in r.json()["message"]
            r = await c.post("/v1/session", content=b'{"api_key": "\\ud800"}',
                             headers={"Content-Type": "application/json"})
            assert r.status_code == 400


async def test_a_deeply_nested_websocket_message_is_a_bad_message(gateway: Running) -> None:
    key = gateway.key("business")
    messages = ["[" * 30_000 + "]" * 30_000, '{"type":"subscribe","event_ids":' + "[" * 40 + "]" * 40 + "}",
                '{"type":"subscribe","event_id":"\\ud800"}', "[" * 30_000]

    def talk(sock: Any) -> list[list[dict[str, Any]]]:
        assert recv(sock)["type"] == "connected"
        out = []
        for msg in messages:
            sock.send(msg)
            sock.send('{"type":"ping"}')
            replies = [recv(sock)]
            while replies[-1]["type"] != "pong":
                replies.append(recv(sock))
            out.append(replies)
        return out

    with trio.fail_after(15):
        answers = await in_ws(ws_url(gateway.url, f"/ws/odds/basketball_nba?apiKey={key}"), talk)
    for msg, replies in zip(messages, answers, strict=True):
        errors = [r for r in replies if r["type"] == "error"]
        assert errors and errors[0]["error"] == "bad_message", (msg[:50], replies)  # and the socket stayed open
    first_error = [next(r for r in replies if r["type"] == "error") for replies in answers]
    assert "nested too deeply" in first_error[0]["message"] and "nested too deeply" in first_error[1]["message"]
    assert "surrogate" in first_error[2]["message"]


async def test_the_row_cap_counts_the_outcomes_of_an_event_list(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("free")
    outcomes = [{"name": "Over", "price": 1.9, "point": 200.5 + i} for i in range(MAX_ROWS + 10_000)]
    event = {"id": "huge", "sport_key": "basketball_nba", "commence_time": "2026-05-12T22:30:00Z",
             "home_team": "A", "away_team": "B", "bookmakers": [{"key": "pinnacle", "markets": [
                 {"key": "totals", "outcomes": outcomes}]}]}
    with trio.fail_after(30):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/odds", json=[event], headers={"X-API-Key": ingest})
            assert (r.status_code, r.json()["error"], r.json()["limit"]) == (413, "payload_too_large", MAX_ROWS)
            assert f"this one has {MAX_ROWS + 10_000}" in r.json()["message"]
            assert (await c.get("/v1/sports", params={"apiKey": key})).json() == []


# -- 14.7: keys never reach a log line ------------------------------------------------------------

async def test_keys_are_redacted_after_decoding_on_every_route(gateway: Running,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    key = gateway.key("business", scopes=("ingest",))
    forms = [f"%61piKey={key}", f"api%5Fkey={key}", f"APIKEY={key}", f"Api_Key={key}", f"apiKey={key}&apiKey={key}",
             f"x=1%23apiKey%3D{key}", f"%2561piKey={key}", f"api-key={key}", f"apikey={key}"]
    paths = ["/v1/sports", "/v1/odds-drop/basketball_nba/recent", "/v1/webhooks"]
    with caplog.at_level(logging.DEBUG, logger="gateway"), trio.fail_after(20):
        async with gateway.client() as c:
            for form in forms:
                for path in paths:
                    await c.get(f"{path}?{form}")
                await c.post(f"/v1/ingest/odds?{form}", json=[quote(-110)])
                async with c.stream("GET", f"/v1/odds-drop/basketball_nba?{form}"):
                    pass
            for n, form in enumerate(forms):
                first = await in_ws(ws_url(gateway.url, f"/ws/odds/basketball_nba?{form}"), recv)
                assert first["type"] == ("connected" if n in (0, 1, 4) else "error"), (form, first)
            # the decoded names really are accepted (that is why they must be redacted)
            assert (await c.get(f"/v1/sports?%61piKey={key}")).status_code == 200
            assert (await c.get(f"/v1/sports?api%5Fkey={key}")).status_code == 200
    access = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert len(access) >= len(forms) * (len(paths) + 2)
    leaks = [f"{r.name}: {r.getMessage()}" for r in caplog.records if key[3:] in r.getMessage()]
    assert leaks == []
    assert all("***" in line for line in access if "?" in line), access


# -- 14.8: one rule for duplicate keys --------------------------------------------------------------

async def test_two_different_keys_are_refused_on_rest_and_sse(gateway: Running) -> None:
    a, b = gateway.key("business", name="a"), gateway.key("business", name="b")
    cases: list[tuple[list[tuple[str, str]], dict[str, str], int, str | None]] = [
        ([("X-API-Key", a), ("X-API-Key", b)], {}, 400, "X-API-Key"),
        ([("X-API-Key", f"{a}, {b}")], {}, 400, "X-API-Key"),  # a proxy joined the two lines
        ([("X-API-Key", a), ("Authorization", f"Bearer {b}")], {}, 400, "X-API-Key"),
        ([], {"apiKey": a, "api_key": b}, 400, "apiKey"),
        ([], {"apiKey": [a, b]}, 400, "apiKey"),  # type: ignore[dict-item]
        ([("X-API-Key", a), ("X-API-Key", a)], {}, 200, None),  # the same key twice is one key
        ([("X-API-Key", a)], {"apiKey": b}, 200, None),  # the documented rule: a header wins
        ([], {"apiKey": [a, a]}, 200, None),  # type: ignore[dict-item]
    ]
    with trio.fail_after(20):
        async with gateway.client() as c:
            for headers, params, status, param in cases:
                for path in ("/v1/sports", "/v1/odds-drop/basketball_nba"):
                    async with c.stream("GET", path, headers=httpx.Headers(headers), params=params) as resp:
                        body = json.loads(await resp.aread()) if resp.status_code != 200 else None
                    assert resp.status_code == status, (path, headers, params)
                    if param is not None:
                        assert body is not None and (body["error"], body["param"]) == ("invalid_param", param)
                        assert "2 different API keys" in body["message"]


async def test_two_different_keys_are_refused_on_websocket(gateway: Running) -> None:
    a, b = gateway.key("business", name="a"), gateway.key("business", name="b")
    path = ws_url(gateway.url, "/ws/odds/basketball_nba")
    with trio.fail_after(15):
        for headers, protocols in (([("X-API-Key", a), ("X-API-Key", b)], None), ([("X-API-Key", a)], [f"apikey.{b}"])):
            first, code = await in_ws(path, lambda s: (recv(s), close_code(s)), headers=headers, protocols=protocols)
            assert (first["error"], first["param"], code) == ("invalid_param", "X-API-Key", 1008)
        first = await in_ws(path + f"?apiKey={b}", recv, headers=[("X-API-Key", a)])
        assert first["type"] == "connected"  # a header wins over the query
        first = await in_ws(path, recv, headers=[("X-API-Key", a)], protocols=[f"apikey.{a}"])
        assert first["type"] == "connected"  # the same key twice is one key


# -- 13.7: frames say what applies; period is one type; the 429 names the burst ---------------------

async def test_the_odds_stream_does_not_list_drop_filters(gateway: Running) -> None:
    key = gateway.key("business")
    with trio.fail_after(10):
        async with gateway.client() as c:
            async with c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": key}) as resp:
                odds = (await next_of(sse_events(resp), "connected")).data["filters"]
            async with c.stream("GET", "/v1/odds-drop/basketball_nba", params={"apiKey": key, "threshold": 25}) as resp:
                drops = (await next_of(sse_events(resp), "connected")).data["filters"]
        ws_odds = (await in_ws(ws_url(gateway.url, f"/ws/odds/basketball_nba?apiKey={key}"), recv))["filters"]
        ws_live = (await in_ws(ws_url(gateway.url, f"/ws/live/basketball_nba?apiKey={key}"), recv))["filters"]
    assert "threshold" not in odds and "direction" not in odds and "threshold" not in ws_odds
    assert (drops["threshold"], drops["direction"]) == (25, "both") and ws_live["threshold"] == 10


async def test_period_is_a_number_in_live_state_and_pbp_event(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("business")
    with trio.fail_after(10):
        async with gateway.client() as c:
            async with c.stream("GET", "/v1/sports/basketball_nba/live/sse", params={"apiKey": key}) as resp:
                events = sse_events(resp)
                await next_of(events, "initial_state")
                await push(c, ingest, [{**PLAY, "state": {"period": "4", "clock": "PT2:14"}}], path="/v1/ingest/pbp")
                frame = (await next_of(events, "pbp_event")).data
            points = (await c.get("/v1/sports/basketball_nba/live/points", params={"apiKey": key})).json()
            async with c.stream("GET", "/v1/sports/basketball_nba/live/sse", params={"apiKey": key}) as resp:
                snapshot = (await next_of(sse_events(resp), "initial_state")).data["data"]
    assert frame["state"]["period"] == 4
    assert points[0]["state"]["period"] == 4 and snapshot[0]["state"]["period"] == 4


async def test_the_429_names_the_burst(gateway: Running) -> None:
    key = gateway.key("free")  # 60/min, bursts of 10
    with trio.fail_after(10):
        async with gateway.client() as c:
            for _ in range(10):
                await c.get("/v1/sports", params={"apiKey": key})
            r = await c.get("/v1/sports", params={"apiKey": key})
    assert r.status_code == 429 and r.json()["burst"] == 10
    assert "60/min, bursts of up to 10" in r.json()["message"]

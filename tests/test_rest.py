"""REST polling in The Odds API v4 shapes, against a real server."""

from __future__ import annotations

import trio

from .conftest import Running
from .helpers import push, quote

GAME = [
    quote(-150), quote(130, outcome="away"),
    quote(-110, market="spreads", point=-3.5), quote(-110, market="spreads", outcome="away", point=3.5),
    quote(-105, market="totals", outcome="over", point=221.5),
    quote(-115, market="totals", outcome="under", point=221.5),
    quote(-120, book="fanduel"), quote(100, book="fanduel", outcome="away"),
    quote(-115, market="player_points", outcome="over", point=24.5, player="LeBron James"),
    quote(-105, market="player_points", outcome="under", point=24.5, player="LeBron James"),
]


async def test_sports_events_odds_props(gateway: Running) -> None:
    key, ingest = gateway.key("free"), gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, GAME)
            h = {"X-API-Key": key}
            sports = (await c.get("/v1/sports", headers=h)).json()
            assert [s["key"] for s in sports] == ["basketball_nba"] and sports[0]["active"] is True
            every = (await c.get("/v4/sports", params={"all": "true"}, headers=h)).json()
            assert len(every) > 50 and {"key", "group", "title", "description", "active", "has_outrights"} <= set(
                every[0])
            events = (await c.get("/v1/sports/basketball_nba/events", headers=h)).json()
            assert events == [{"id": "2026-05-12_Lakers_Warriors", "sport_key": "basketball_nba", "sport_title": "NBA",
                               "commence_time": "2026-05-12T22:30:00Z", "home_team": "Los Angeles Lakers",
                               "away_team": "Golden State Warriors"}]
            odds = (await c.get("/v4/sports/basketball_nba/odds", headers=h,
                                params={"markets": "h2h,spreads,totals", "oddsFormat": "american"})).json()
            books = {b["key"]: b for b in odds[0]["bookmakers"]}
            assert set(books) == {"pinnacle", "fanduel"} and books["pinnacle"]["title"] == "Pinnacle"
            markets = {m["key"]: m["outcomes"] for m in books["pinnacle"]["markets"]}
            assert markets["h2h"] == [{"name": "Los Angeles Lakers", "price": -150},
                                      {"name": "Golden State Warriors", "price": 130}]
            assert markets["spreads"][0] == {"name": "Los Angeles Lakers", "price": -110, "point": -3.5}
            assert markets["totals"][1] == {"name": "Under", "price": -115, "point": 221.5}
            dec = (await c.get("/v1/sports/basketball_nba/odds", headers=h, params={"bookmakers": "fanduel"})).json()
            assert dec[0]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] == 1.83
            props = (await c.get("/v1/sports/basketball_nba/props", headers=h, params={"player": "lebron"})).json()
            assert props[0]["player"] == "LeBron James" and props[0]["line"] == 24.5
            assert (props[0]["over_price"], props[0]["under_price"], props[0]["market"]) == (-115, -105, "Points")


async def test_param_errors_name_the_param(gateway: Running) -> None:
    key = gateway.key("free")
    cases = [
        ("/v1/sports/basketball_nba/odds", {"markets": "h2h,foo"}, "markets"),
        ("/v1/sports/basketball_nba/odds", {"oddsFormat": "fractional"}, "oddsFormat"),
        ("/v1/sports/basketball_nba/odds", {"regions": "mars"}, "regions"),
        ("/v1/sports/basketball_nba/odds", {"bookmakers": "nobook"}, "bookmakers"),
        ("/v1/sports/basketball_nba/odds", {"commenceTimeFrom": "yesterday"}, "commenceTimeFrom"),
        ("/v1/sports/curling_moon/odds", {}, "sport_key"),
        ("/v1/sports/basketball_nba/props", {"limit": "0"}, "limit"),
        ("/v1/odds-drop/basketball_nba/recent", {"threshold": "201"}, "threshold"),
        ("/v1/sports/basketball_nba/live/source-health", {"degraded_only": "maybe"}, "degraded_only"),
    ]
    with trio.fail_after(10):
        async with gateway.client() as c:
            for path, params, param in cases:
                r = await c.get(path, params={**params, "apiKey": key})
                body = r.json()
                assert r.status_code == 400, (path, params, body)
                assert body["error"] == "invalid_param" and body["param"] == param, body
                assert body["request_id"] == r.headers["x-request-id"]


async def test_auth_errors_and_envelope(gateway: Running) -> None:
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.get("/v1/sports")
            assert (r.status_code, r.json()["error"]) == (401, "missing_key")
            r = await c.get("/v1/sports", headers={"Authorization": "Bearer gw_nope"})
            assert (r.status_code, r.json()["error"]) == (401, "invalid_key")
            r = await c.get("/v1/nothing-here")
            assert (r.status_code, r.json()["error"]) == (404, "not_found")
            assert (await c.get("/healthz")).json() == {"status": "ok"}
            ready = await c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["writer"] is True


async def test_header_key_wins_over_query(gateway: Running) -> None:
    key = gateway.key("free")
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.get("/v1/sports", params={"apiKey": "gw_wrong"}, headers={"X-API-Key": key})
            assert r.status_code == 200


async def test_live_points_and_source_health(gateway: Running) -> None:
    key, ingest = gateway.key("free"), gateway.key(scopes=("ingest",))
    play = {"match_id": "0042500222", "sport_key": "basketball_nba", "source": "nba_live", "role": "primary",
            "event_type": "made_3", "team_or_player_a": "Lakers", "team_or_player_b": "Thunder", "score_a": "107",
            "score_b": "125", "description": "C. Holmgren 3PT JUMPER from 26ft",
            "state": {"period": 4, "clock": "PT2:14"}, "occurred_at_ms": 1778214012700}
    with trio.fail_after(10):
        async with gateway.client() as c:
            await push(c, ingest, [play], path="/v1/ingest/pbp")
            h = {"X-API-Key": key}
            points = (await c.get("/v1/sports/basketball_nba/live/points", headers=h)).json()
            assert points[0]["match_id"] == "0042500222" and points[0]["score_b"] == "125"
            assert points[0]["state"]["clock"] == "PT2:14"
            health = (await c.get("/v1/sports/basketball_nba/live/source-health", headers=h)).json()
            assert health["count"] == 1 and health["results"][0]["source"] == "nba_live"
            assert health["results"][0]["status"] == "fresh" and health["results"][0]["events_last_5min"] == 1
            stale = (await c.get("/v1/sports/basketball_nba/live/source-health", headers=h,
                                 params={"degraded_only": "true"})).json()
            assert stale["count"] == 0

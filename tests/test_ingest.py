"""HTTP push ingest: per-row validation, nothing stored from a malformed body, scope checks."""

from __future__ import annotations

import trio

from .conftest import Running
from .helpers import quote

TOA = [{
    "id": "e1", "sport_key": "soccer_epl", "commence_time": "2026-05-12T14:00:00Z",
    "home_team": "Arsenal", "away_team": "Chelsea",
    "bookmakers": [{"key": "bet365", "title": "Bet365", "last_update": "2026-05-12T13:00:00Z",
                    "markets": [{"key": "h2h", "outcomes": [
                        {"name": "Arsenal", "price": 1.91}, {"name": "Chelsea", "price": 4.2},
                        {"name": "Draw", "price": 3.5}, {"name": "Spurs", "price": 9.0}]}]}],
}]


async def test_good_rows_kept_bad_rows_reported(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("free")
    rows = [quote(-110), quote(-100.5), quote(-110, outcome="sideways"), "nonsense",
            quote(-110, market="spreads"), quote(-110, book="")]
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/odds", json=rows, headers={"X-API-Key": ingest})
            body = r.json()
            assert r.status_code == 200 and body["accepted"] == 1
            reasons = {e["index"]: e["error"] for e in body["rejected"]}
            assert set(reasons) == {1, 2, 3, 4, 5}
            assert "price" in reasons[1] and "outcome" in reasons[2] and "point" in reasons[4]
            assert "bookmaker" in reasons[5]
            odds = (await c.get("/v1/sports/basketball_nba/odds", params={"apiKey": key})).json()
            assert len(odds) == 1


async def test_toa_list_with_a_bad_outcome(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("free")
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/odds", json=TOA, headers={"X-API-Key": ingest})
            body = r.json()
            assert body["accepted"] == 3 and "Spurs" in body["rejected"][0]["error"]
            odds = (await c.get("/v1/sports/soccer_epl/odds", params={"apiKey": key, "oddsFormat": "american"})).json()
            prices = {o["name"]: o["price"] for o in odds[0]["bookmakers"][0]["markets"][0]["outcomes"]}
            assert prices == {"Arsenal": -110, "Chelsea": 320, "Draw": 250}


async def test_malformed_bodies_store_nothing(gateway: Running) -> None:
    ingest, key = gateway.key(scopes=("ingest",)), gateway.key("free")
    with trio.fail_after(10):
        async with gateway.client() as c:
            for body in (b"{not json", b'{"a": 1}', b"42", "[\u00ff".encode("latin-1")):
                r = await c.post("/v1/ingest/odds", content=body, headers={"X-API-Key": ingest})
                assert r.status_code == 400 and r.json()["error"] == "invalid_body", r.text
            r = await c.post("/v1/ingest/odds", json=[quote(5)], headers={"X-API-Key": ingest})
            assert r.status_code == 422 and r.json()["rejected"][0]["index"] == 0
            r = await c.post("/v1/ingest/pbp", json=[{"match_id": 1}], headers={"X-API-Key": ingest})
            assert r.status_code == 422
            assert (await c.get("/v1/sports", params={"apiKey": key})).json() == []


async def test_ingest_needs_scope_and_size_limit(gateway: Running) -> None:
    plain = gateway.key()
    ingest = gateway.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gateway.client() as c:
            r = await c.post("/v1/ingest/odds", json=[quote(-110)], headers={"X-API-Key": plain})
            assert (r.status_code, r.json()["error"]) == (403, "scope_required")
            big = b"[" + b" " * (gateway.config.server.max_body_bytes + 10) + b"]"
            r = await c.post("/v1/ingest/odds", content=big, headers={"X-API-Key": ingest})
            assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

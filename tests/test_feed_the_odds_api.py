"""The Odds API feed against a real local HTTP upstream: parsing, quota, failures, supervision."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import random
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.config import FeedConfig
from gateway.feeds.http import Backoff, parse_retry_after, redact
from gateway.feeds.runner import feed_function, supervise
from gateway.feeds.the_odds_api import (
    QUOTA_EXHAUSTED_SLEEP_S,
    MissingApiKey,
    OddsApiPoller,
    Quota,
    api_key,
    run_the_odds_api,
)
from tests.conftest import make_config, start_gateway
from tests.upstream import MemorySink, Reply, load, serve_upstream

FIXTURE = load("toa_basketball_nba_odds.json")
ODDS = "/v4/sports/basketball_nba/odds"
KEY = "sekret-key-123"
QUOTA = {"x-requests-remaining": "19880", "x-requests-used": "120", "x-requests-last": "3"}


def feed(url: str, **kw: Any) -> FeedConfig:
    kw.setdefault("sports", ("basketball_nba",))
    return FeedConfig(type="the_odds_api", base_url=url, api_key=KEY, interval_s=0.05, **kw)


def fast() -> Backoff:
    return Backoff(start_s=0.02, cap_s=0.1, rng=random.Random(1))


async def test_one_round_submits_the_parsed_quotes() -> None:
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(ODDS, Reply(FIXTURE, headers=QUOTA))
            sink = MemorySink()
            poller = OddsApiPoller(feed(up.url, bookmakers=("draftkings", "caesars")), sink, client, KEY)
            assert await poller.round() == (0.05, True)
    assert up.hits(ODDS)[0].query == {
        "apiKey": KEY, "regions": "us", "markets": "h2h,spreads,totals", "oddsFormat": "american",
        "dateFormat": "iso", "bookmakers": "draftkings,williamhill_us"}  # our book names, TOA's keys
    assert [source for source, _ in sink.quote_batches] == ["the_odds_api"]
    quotes = sink.quotes
    assert len(quotes) == 36
    assert {q.bookmaker for q in quotes} == {"draftkings", "fanduel", "caesars", "betonline"}
    by = {(q.event_id[:4], q.bookmaker, q.market_key, q.outcome): q for q in quotes}
    ml = by[("e912", "caesars", "h2h", "home")]
    assert (ml.price, ml.home_team, ml.away_team, ml.point) == (
        175, "Los Angeles Lakers", "Oklahoma City Thunder", None)
    spread = by[("e912", "fanduel", "spreads", "away")]
    assert (spread.price, spread.point) == (-112, -5.5)
    total = by[("4c1f", "draftkings", "totals", "over")]
    assert (total.price, total.point) == (-110, 214.5)
    assert ml.observed_at_ms == 1747699050000  # the market's last_update
    assert poller.quota == Quota(remaining=19880, used=120, last=3, polls=1)


async def test_recovers_from_every_kind_of_upstream_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps(FIXTURE).encode()
    good = Reply(FIXTURE, headers=QUOTA)
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=0.25) as client:
            up.route(ODDS, good,
                     Reply({"message": "boom"}, status=500),
                     Reply(FIXTURE, delay_s=0.6),  # past the client's timeout
                     Reply(body[: len(body) // 2]),  # truncated JSON, valid HTTP
                     Reply(FIXTURE, cut=100),  # connection closed mid-body
                     Reply(b"<html>bad gateway</html>", status=502),
                     Reply({"message": "slow down"}, status=429, headers={"Retry-After": "0.4"}),
                     good)
            sink = MemorySink()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(run_the_odds_api, feed(up.url), sink, client=client, backoff=fast()))
                await sink.wait_for(lambda: len(sink.quote_batches) == 2)
                nursery.cancel_scope.cancel()
    hits = up.hits(ODDS)
    assert len(hits) == 8  # every failure retried, none fatal
    first, second = sink.quote_batches
    assert len(first[1]) == len(second[1]) == 36  # nothing submitted before the failures is lost
    assert hits[7].at - hits[6].at >= 0.39  # Retry-After honoured
    text = caplog.text
    for needle in ("HTTP 500", "timed out", "invalid JSON", "RemoteProtocolError", "HTTP 502", "429"):
        assert needle in text, needle
    assert KEY not in text  # not in our warnings, nor in httpx's request log
    assert "apiKey=***" in text


async def test_bad_rows_are_skipped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    payload = copy.deepcopy(FIXTURE)
    del payload[1]["home_team"]  # the whole second event (12 quotes) is unusable
    payload[0]["bookmakers"][0]["markets"][0]["outcomes"][0]["name"] = "Los Angeles Clippers"  # one outcome
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(ODDS, Reply(payload), Reply({"message": "an object, not a list"}))
            sink = MemorySink()
            poller = OddsApiPoller(feed(up.url), sink, client, KEY, backoff=fast())
            assert (await poller.round())[1] is True
            assert (await poller.round())[1] is False  # a payload that is not a list is a failed poll
    assert len(sink.quotes) == 36 - 12 - 1
    assert "2 row(s) rejected, 23 kept" in caplog.text
    assert "home_team: required" in caplog.text


async def test_quota_warnings_and_exhaustion(caplog: pytest.LogCaptureFixture) -> None:
    low = {"x-requests-remaining": "30", "x-requests-used": "470", "x-requests-last": "3"}
    out = {"x-requests-remaining": "0", "x-requests-used": "500", "x-requests-last": "3"}
    two = ("basketball_nba", "icehockey_nhl")
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(ODDS, Reply(FIXTURE, headers=low), Reply(FIXTURE, headers=out))
            up.route("/v4/sports/icehockey_nhl/odds", Reply([], headers=low))
            poller = OddsApiPoller(feed(up.url, sports=two), MemorySink(), client, KEY)
            assert await poller.round() == (0.05, True)
            assert "quota is low: remaining=30 used=470" in caplog.text
            assert await poller.round() == (QUOTA_EXHAUSTED_SLEEP_S, True)
            assert len(up.hits("/v4/sports/icehockey_nhl/odds")) == 1  # the round stopped at zero
            assert "quota is used up" in caplog.text
            up.route(ODDS, Reply({"message": "Usage quota has been reached", "error_code": "OUT_OF_USAGE_CREDITS"},
                                 status=401))
            fresh = OddsApiPoller(feed(up.url), MemorySink(), client, KEY, backoff=fast())
            delay, ok = await fresh.round()
            assert not ok and delay == QUOTA_EXHAUSTED_SLEEP_S


async def test_an_unknown_sport_is_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(ODDS, Reply(FIXTURE))
            sink = MemorySink()
            poller = OddsApiPoller(feed(up.url, sports=("cricket_nowhere", "basketball_nba")), sink, client, KEY)
            assert await poller.round() == (0.05, True)
    assert len(sink.quotes) == 36
    assert "cricket_nowhere answered 404; skipping this sport" in caplog.text


def test_api_key_comes_from_config_or_environment() -> None:
    base = FeedConfig(type="the_odds_api", api_key_env="MY_TOA_KEY")
    assert api_key(base, {"MY_TOA_KEY": "from-env"}) == "from-env"
    assert api_key(FeedConfig(type="the_odds_api", api_key="inline"), {"ODDS_API_KEY": "env"}) == "inline"
    with pytest.raises(MissingApiKey, match="set the environment variable MY_TOA_KEY"):
        api_key(base, {})


def test_helpers() -> None:
    assert redact("GET /x?apiKey=abc&regions=us and api_key=def") == "GET /x?apiKey=***&regions=us and api_key=***"
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    b = Backoff(start_s=1, cap_s=8, rng=random.Random(0))
    steps = [b.next_delay() for _ in range(6)]
    for got, base in zip(steps, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.5 * base <= got <= min(8, 1.5 * base)
    assert b.next_delay(at_least_s=30) == 30  # Retry-After beats the ladder's cap
    b.reset()
    assert b.next_delay() <= 1.5


async def test_a_crashing_feed_is_restarted_with_backoff(autojump_clock: trio.abc.Clock,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("ODDS_API_KEY", raising=False)
    cfg = FeedConfig(type="the_odds_api", sports=("basketball_nba",))
    fn = feed_function(cfg)
    starts: list[float] = []

    async def counting(f: FeedConfig, sink: Any) -> None:
        starts.append(trio.current_time())
        await fn(f, sink)

    with trio.move_on_after(400):  # virtual time: the autojump clock skips the sleeps
        await supervise(cfg, MemorySink(), counting, rng=random.Random(3))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 8
    for i, gap in enumerate(gaps):
        base = min(60.0, 2.0**i)  # 1, 2, 4 ... capped at 60 s, jittered 0.5x..1.5x
        assert 0.5 * base <= gap <= 1.5 * base
    assert "no API key: set the environment variable ODDS_API_KEY" in caplog.text
    assert "crashed; restarting" in caplog.text


async def _poll(client: httpx.AsyncClient, path: str, key: str, ok: Any, **params: str) -> Any:
    while True:
        r = await client.get(path, params={"apiKey": key, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        if ok(body):
            return body
        await trio.sleep(0.05)


def _price(events: list[dict[str, Any]], book: str, team: str) -> Any:
    for ev in events:
        for b in ev["bookmakers"]:
            if b["key"] != book:
                continue
            for m in b["markets"]:
                if m["key"] == "h2h":
                    for o in m["outcomes"]:
                        if o["name"] == team:
                            return o["price"]
    return None


async def test_end_to_end_odds_and_source_health(tmp_path: Path) -> None:
    moved = copy.deepcopy(FIXTURE)
    moved[0]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = 195
    odds, health = "/v1/sports/basketball_nba/odds", "/v1/sports/basketball_nba/live/source-health"
    with trio.fail_after(10):
        async with serve_upstream() as up, trio.open_nursery() as nursery:
            up.route(ODDS, Reply(FIXTURE, headers=QUOTA))
            cfg = make_config(tmp_path, sources={"stale_after_s": 0.5}, feeds=[{
                "type": "the_odds_api", "base_url": up.url, "api_key": KEY, "sports": ["basketball_nba"],
                "interval_s": 0.1}])
            gw = await start_gateway(nursery, cfg, feeds=True)
            key = gw.key()
            lakers = "Los Angeles Lakers"
            async with gw.client() as c:
                body = await _poll(c, odds, key, lambda b: len(b) == 2, oddsFormat="american")
                assert _price(body, "caesars", lakers) == 175
                rows = (await _poll(c, health, key, lambda b: b["count"] == 1))["results"]
                assert (rows[0]["source"], rows[0]["status"]) == ("the_odds_api", "fresh")
                up.route(ODDS, Reply({"message": "down"}, status=503))  # the upstream dies
                await _poll(c, health, key, lambda b: b["results"][0]["status"] == "stale")
                body = (await c.get(odds, params={"apiKey": key, "oddsFormat": "american"})).json()
                assert _price(body, "draftkings", lakers) == 180  # what was stored stays
                up.route(ODDS, Reply(moved, headers=QUOTA))  # and comes back with a new price
                await _poll(c, odds, key, lambda b: _price(b, "draftkings", lakers) == 195, oddsFormat="american")
                await _poll(c, health, key, lambda b: b["results"][0]["status"] == "fresh")
            gw.stop.set()
            await gw.done.wait()


async def test_a_market_a_book_stops_listing_is_suspended_then_reopens() -> None:
    """Issue 15.1: a market in one answer and not in the next is suspended while its event is
    upcoming or in play (closed once it is over); listed again, it is open."""
    future = copy.deepcopy(FIXTURE)
    for ev in future:
        ev["commence_time"] = "2099-01-01T00:00:00Z"
    fewer = copy.deepcopy(future)
    book = fewer[0]["bookmakers"][0]
    gone = book["markets"].pop()  # one market of one book
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(ODDS, Reply(future), Reply(fewer), Reply(fewer), Reply(future), Reply([]))
            sink = MemorySink()
            poller = OddsApiPoller(feed(up.url), sink, client, KEY)
            for _ in range(4):
                await poller.round()
            batches = [quotes for _, quotes in sink.quote_batches]
            past = OddsApiPoller(feed(up.url), MemorySink(), client, KEY)
            over = dataclasses.replace(sink.quotes[0], commence_time_ms=1_700_000_000_000)  # long over
            past.last["basketball_nba"] = [over]
            await past.round()  # the upstream's last reply: nothing listed at all
    suspended = [q for q in batches[1] if q.status != "open"]
    assert {(q.bookmaker, q.market_key, q.status, q.reason) for q in suspended} == {
        (book["key"], gone["key"], "suspended", "not_listed")}
    assert len(suspended) == len(gone["outcomes"])
    assert all(q.status == "open" for q in batches[2])  # still unlisted: said once
    assert all(q.status == "open" for q in batches[3]) and len(batches[3]) == len(batches[0])
    assert [q.status for q in past.sink.quotes] == ["closed"]  # type: ignore[attr-defined]

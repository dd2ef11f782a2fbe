"""The simulator feed: deterministic, complete boards, sane prices, live plays, sharp moves."""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from gateway.config import FeedConfig
from gateway.core.model import MARKET_OUTCOMES, Play, Quote
from gateway.core.odds import american_to_probability, cents_delta, validate_american
from gateway.feeds import simulator
from gateway.feeds.sim_baseball import advance_runners, walk_runners
from gateway.feeds.simulator import DEFAULT_SPORTS, Simulator, run_simulator
from gateway.livestate import live_state_rows
from gateway.store import Store

from .conftest import Running, make_config, start_gateway
from .helpers import push, quote

T0 = 1_778_612_400_000
PER_MARKET = {"pinnacle", "bet365", "betmgm", "caesars", "fanatics", "bovada"}
GAME_LINE = {"fanduel", "draftkings"}


def run(sim: Simulator, steps: int, step_ms: int = 500, start: int = 0) -> list[tuple[list[Quote], list[Play]]]:
    return [sim.step(T0 + (start + i) * step_ms) for i in range(steps)]


def make(sports: tuple[str, ...] = DEFAULT_SPORTS, seed: int = 1, events: int = 4) -> Simulator:
    return Simulator(sports, events_per_sport=events, rng=random.Random(seed), now_ms=T0)


def test_deterministic_given_the_seed() -> None:
    assert run(make(seed=5), 200) == run(make(seed=5), 200)
    assert run(make(seed=5), 3) != run(make(seed=6), 3)


def test_first_step_is_the_full_board() -> None:
    quotes, _ = make().step(T0)
    cells = {(q.event_id, q.bookmaker, q.market_key, q.outcome, q.player) for q in quotes}
    assert len(cells) == len(quotes)  # each cell once
    by_sport: dict[str, set[str]] = defaultdict(set)
    for q in quotes:
        by_sport[q.sport_key].add(q.market_key)
        # a game already under way opens a minute before its start: it has a closing line
        assert q.observed_at_ms == (T0 if q.commence_time_ms > T0 else q.commence_time_ms - 60_000)
    assert set(by_sport) == set(DEFAULT_SPORTS)
    for markets in by_sport.values():
        assert {"h2h", "spreads", "totals"} <= markets
    assert {"player_points", "player_rebounds", "player_assists"} <= by_sport["basketball_nba"]
    assert {"pitcher_strikeouts", "batter_hits"} <= by_sport["baseball_mlb"]
    assert "player_shots_on_goal" in by_sport["soccer_epl"]
    assert {q.bookmaker for q in quotes} == PER_MARKET | GAME_LINE
    assert {q.bookmaker for q in quotes if q.kind == "prop"} == PER_MARKET
    assert {q.outcome for q in quotes if q.sport_key == "soccer_epl" and q.market_key == "h2h"} == {
        "home", "away", "draw"}
    assert "draw" not in {q.outcome for q in quotes if q.sport_key == "basketball_nba"}
    # several players per event carry props
    nba_event = next(q.event_id for q in quotes if q.sport_key == "basketball_nba")
    assert len({q.player for q in quotes if q.event_id == nba_event and q.player}) >= 4


def test_events_live_and_upcoming() -> None:
    sim = make(events=4)
    for sport in DEFAULT_SPORTS:
        starts = [ev.commence_ms for ev in sim.events if ev.profile.key == sport]
        assert sum(s <= T0 for s in starts) == 2
        assert all(s >= T0 + 3_600_000 for s in starts if s > T0)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d_\d{4}_\w+_\w+", ev.id) for ev in sim.events)


def test_prices_are_valid_and_pairs_carry_vig() -> None:
    sim = make()
    board: dict[tuple[str, str, str, str | None], dict[str, Quote]] = defaultdict(dict)
    for quotes, _ in run(sim, 400):
        for q in quotes:
            assert validate_american(q.price) == q.price
            assert q.outcome in MARKET_OUTCOMES.get(q.market_key, ("over", "under"))
            assert (q.point is None) == (q.market_key == "h2h")
            assert (q.player is None) == (q.kind == "game")
            board[(q.event_id, q.bookmaker, q.market_key, q.player)][q.outcome] = q
    for key, cells in board.items():
        overround = sum(american_to_probability(q.price) for q in cells.values())
        assert 1.0 < overround < 1.2, (key, cells)
        if key[2] == "spreads":
            assert cells["home"].point == -cells["away"].point  # type: ignore[operator]
        elif key[2] != "h2h":
            assert cells["over"].point == cells["under"].point


def test_later_steps_emit_only_changes() -> None:
    sim = make()
    last: dict[tuple[str, str, str, str, str | None], tuple[int, float | None, str]] = {}
    for i, (quotes, _) in enumerate(run(sim, 600)):
        for q in quotes:
            key = (q.event_id, q.bookmaker, q.market_key, q.outcome, q.player)
            if i > 0:
                assert last.get(key) != (q.price, q.point, q.status), key
            last[key] = (q.price, q.point, q.status)


def market_rates(sim: Simulator, minutes: float, step_ms: int = 500) -> dict[str, float]:
    """What the feed emits, per second: changes by pre-game and in-play event, and drops."""
    from gateway.core.drops import DropDetector

    detector = DropDetector({b: "game_line" for b in GAME_LINE})
    counts: dict[str, float] = defaultdict(float)
    steps = int(minutes * 60_000 / step_ms)
    for i in range(steps):
        live = {ev.id for ev in sim.events if ev.game is not None}
        counts["live_event_s"] += len(live) * step_ms / 1000
        counts["pre_event_s"] += (len(sim.events) - len(live)) * step_ms / 1000
        quotes, _ = sim.step(T0 + i * step_ms)
        for q in quotes:
            drop = detector.observe(q)
            if i == 0:
                continue
            where = "live" if q.event_id in live else "pre"
            counts[f"{where}_changes"] += 1
            if drop is not None and drop.delta_cents >= 10:
                counts[f"{where}_big"] += 1
                if where == "live" and q.kind == "game":
                    counts["live_game_big"] += 1
    secs = steps * step_ms / 1000
    return {"changes_per_s": (counts["live_changes"] + counts["pre_changes"]) / secs,
            "per_live_event_s": counts["live_changes"] / counts["live_event_s"],
            "per_pre_event_s": counts["pre_changes"] / counts["pre_event_s"],
            "big_share_pre": counts["pre_big"] / counts["pre_changes"],
            "big_share_live": counts["live_big"] / counts["live_changes"],
            "live_game_big_per_event_min": counts["live_game_big"] / counts["live_event_s"] * 60}


def test_rates_resemble_real_markets() -> None:
    """The aims of README "Simulator rates": a book reprices a market every ~40 s in play and
    a few times an hour before it; few pre-game moves cross 10 cents; yet each live game
    shows several 10-cent moves of its main lines a minute (the dashboard's default filter)."""
    r = market_rates(make(seed=7), minutes=40)
    assert 0.7 <= r["per_live_event_s"] <= 2.5, r
    assert 0.03 <= r["per_pre_event_s"] <= 0.25, r
    assert r["big_share_pre"] <= 0.25 and 0.1 <= r["big_share_live"] <= 0.5, r
    assert r["live_game_big_per_event_min"] >= 3, r
    assert 4 <= r["changes_per_s"] <= 25, r  # the shipped demo: 5 sports x 4 events (was ~200/s)


def test_scores_suspend_books_steam_follows_sharp_moves_and_started_games_have_a_close() -> None:
    """Issue 15: a score suspends the moneyline and spread at every book (in most sports), and
    each reopens within seconds (its first price a drop with after_suspension); sharp moves
    make steam; every game that starts, even one under way when the feed began, has prices
    before its start (a closing line)."""
    from gateway.core.drops import DropDetector
    from gateway.core.steam import SteamDetector

    sim = make(seed=3)
    detector, steam = DropDetector({b: "game_line" for b in GAME_LINE}), SteamDetector()
    suspended: dict[tuple[str, str, str], int] = {}
    reopen_s: list[float] = []
    steams = after = 0
    first_seen: dict[str, int] = {}
    for i in range(1200):
        now = T0 + i * 500
        quotes, _ = sim.step(now)
        for q in quotes:
            first_seen.setdefault(q.event_id, q.observed_at_ms)
            key = (q.event_id, q.bookmaker, q.market_key)
            if q.status == "suspended":
                assert q.market_key in ("h2h", "spreads") and q.reason == "score"
                suspended.setdefault(key, now)
            elif key in suspended:
                reopen_s.append((now - suspended.pop(key)) / 1000)
            d = detector.observe(q)
            if d is not None:
                after += d.after_suspension
                steams += steam.observe(d) is not None
    assert len(reopen_s) >= 20 and max(reopen_s) <= 7.0 and after >= 10, (len(reopen_s), after)
    assert steams >= 3
    started = {ev.id: ev.commence_ms for ev in sim.events if ev.commence_ms <= T0 + 1200 * 500}
    assert started and all(first_seen[e] < t for e, t in started.items() if e in first_seen)


def test_rates_do_not_depend_on_the_step_interval() -> None:
    fine, coarse = market_rates(make(seed=9), 20, step_ms=500), market_rates(make(seed=9), 20, step_ms=2000)
    for key in ("per_live_event_s", "per_pre_event_s"):
        assert 0.6 <= coarse[key] / fine[key] <= 1.4, (key, fine, coarse)


def test_live_games_emit_plays_with_rising_scores() -> None:
    sim = make(events=2)
    plays: dict[str, list[Play]] = defaultdict(list)
    for _, ps in run(sim, 3000, step_ms=5000):  # about four hours of simulated time
        for p in ps:
            plays[p.match_id].append(p)
    assert {p[0].sport_key for p in plays.values()} == set(DEFAULT_SPORTS)
    finals = 0
    for match, ps in plays.items():
        scores = [(int(p.score_a), int(p.score_b)) for p in ps]
        assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(scores)), match
        assert all(a.occurred_at_ms <= b.occurred_at_ms for a, b in itertools.pairwise(ps))
        assert all(p.source == "simulator" and p.role == "primary" and p.occurred_at_ms <= p.captured_at_ms
                   for p in ps)
        assert all(p.team_or_player_a != p.team_or_player_b for p in ps)
        if ps[-1].status == "final":
            finals += 1
            assert ps[-1].event_type == "game_end"
            assert sum(p.status == "final" for p in ps) == 1
    assert finals >= len(DEFAULT_SPORTS)  # games end ...
    assert len(sim.events) == 2 * len(DEFAULT_SPORTS)  # ... and new ones take their place
    types: dict[str, set[str]] = defaultdict(set)
    for ps in plays.values():
        types[ps[0].sport_key].update(p.event_type for p in ps)
    assert {"made_2", "made_3", "free_throw", "rebound", "period_start", "period_end"} <= types["basketball_nba"]
    assert {"single", "strikeout", "out", "inning_start"} <= types["baseball_mlb"]
    assert {"goal", "shot", "corner"} <= types["soccer_epl"]


def test_clock_formats() -> None:
    sim = make(events=1)
    for _, ps in run(sim, 200, step_ms=2000):
        for p in ps:
            if p.sport_key == "baseball_mlb":
                assert p.clock in ("top", "bottom")
            else:
                assert p.clock is not None and re.fullmatch(r"\d{1,3}:\d\d", p.clock), p
            assert isinstance(p.period, int) and p.period >= 1


def test_sharp_moves_lead_and_followers_copy() -> None:
    sim = make(("basketball_nba",), seed=3, events=4)  # two in play: a sharp move every ~4 min each
    history: dict[tuple[str, str, str, str | None, float | None], list[tuple[int, str, int]]] = defaultdict(list)
    prev: dict[tuple[str, str, str, str, str | None, float | None], int] = {}
    for step, (quotes, _) in enumerate(run(sim, 1200)):
        for q in quotes:
            key = (q.event_id, q.bookmaker, q.market_key, q.outcome, q.player, q.point)
            if key in prev and abs(cents_delta(prev[key], q.price)) >= 10:
                history[(q.event_id, q.market_key, q.outcome, q.player, q.point)].append(
                    (step, q.bookmaker, cents_delta(prev[key], q.price)))
            prev[key] = q.price
    assert sim.sharp_moves >= 3

    def followed(moves: list[tuple[int, str, int]]) -> bool:
        for step, _, delta in moves:
            books = {b for s, b, d in moves if step <= s <= step + 32 and (d > 0) == (delta > 0)}  # 16 s
            if len(books) >= 3:
                return True
        return False

    assert any(followed(m) for m in history.values())


def test_unknown_sport_gets_generic_teams() -> None:
    sim = make(("curling_world",), events=2)
    quotes, _ = sim.step(T0)
    assert {q.sport_key for q in quotes} == {"curling_world"}
    assert {"h2h", "spreads", "totals"} <= {q.market_key for q in quotes}
    plays = [p for _, ps in run(sim, 200, step_ms=5000, start=1) for p in ps]
    assert plays and all(p.sport_key == "curling_world" for p in plays)


def test_baseball_runners() -> None:
    assert advance_runners([False, False, False], 4) == ([False, False, False], 1)
    assert advance_runners([True, True, True], 4) == ([False, False, False], 4)
    assert advance_runners([True, False, True], 1) == ([True, True, False], 1)
    assert advance_runners([True, True, False], 2) == ([False, True, True], 1)
    assert walk_runners([True, False, True]) == ([True, True, True], 0)
    assert walk_runners([True, True, True]) == ([True, True, True], 1)
    assert walk_runners([False, True, False]) == ([True, True, False], 0)


class FakeSink:
    def __init__(self) -> None:
        self.quotes: list[tuple[str, list[Quote]]] = []
        self.plays: list[list[Play]] = []

    async def submit_quotes(self, quotes: list[Quote], *, source: str) -> None:
        self.quotes.append((source, quotes))

    async def submit_plays(self, plays: list[Play]) -> None:
        self.plays.append(plays)


async def test_run_simulator_feeds_the_sink(autojump_clock: trio.testing.MockClock,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "_now_ms", lambda: T0 + int(trio.current_time() * 1000))  # the mock clock
    sink = FakeSink()
    feed = FeedConfig(type="simulator", name="sim1", sports=("basketball_nba",), interval_s=0.5, seed=1,
                      events_per_sport=2)
    with trio.move_on_after(120):  # two minutes of simulated time, at once
        await run_simulator(feed, sink)
    assert len(sink.quotes) >= 3
    assert {source for source, _ in sink.quotes} == {"sim1"}
    assert len(sink.quotes[0][1]) > len(sink.quotes[1][1])  # the full board, then changes
    assert all(p.source == "sim1" for batch in sink.plays for p in batch)


# -- a restart: the previous run's games ------------------------------------------------------

async def _live_points(gw: Running, key: str) -> list[dict[str, Any]]:
    async with gw.client() as c:
        r = await c.get("/v1/sports/basketball_nba/live/points", params={"apiKey": key})
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()
        return rows


async def _live_snapshot(gw: Running, key: str) -> dict[str, Any]:
    url = "ws" + gw.url.removeprefix("http") + f"/ws/live/basketball_nba?apiKey={key}"
    async with open_websocket_url(url) as ws:
        assert json.loads(await ws.get_message())["type"] == "connected"
        snap: dict[str, Any] = json.loads(await ws.get_message())
        return snap


def _stored_live_state(gw: Running, match_id: str) -> dict[str, Any]:
    """A match's live state as the database holds it (read with no gateway running)."""
    store = Store(gw.config.db_path(), readers=1)
    try:
        rows = store.read_sync(lambda conn: live_state_rows(conn, "basketball_nba", match_id))
    finally:
        store.close()
    assert len(rows) == 1, rows
    return rows[0]


async def test_a_restart_ends_the_games_the_last_run_left_in_play(nursery: trio.Nursery, tmp_path: Path) -> None:
    """A restarted simulator starts a new board; the games the last run had in play are ended
    (final, last score) so that the dashboard does not show them LIVE forever.

    Both runs' feeds keep playing while the test looks: the score it compares with is the one
    the first run left in the database once stopped (a play may score between a read and the
    stop), and the second run is looked at once its feed has committed its first plays (its
    feed task is not done before the gateway serves)."""
    cfg = make_config(tmp_path, feeds=[{"type": "simulator", "sports": ["basketball_nba"], "interval_s": 0.2,
                                        "events_per_sport": 2}])
    with trio.fail_after(20):
        first = await start_gateway(nursery, cfg, feeds=True)
        key = first.key()
        while not (before := [r for r in await _live_points(first, key)  # noqa: ASYNC110 (a client polling REST)
                              if r["state"]["status"] != "final"]):
            await trio.sleep(0.1)
        match_id = before[0]["match_id"]
        assert {r["match_id"] for r in (await _live_snapshot(first, key))["live_state"]} == {match_id}
        first.stop.set()
        await first.done.wait()
        left = _stored_live_state(first, match_id)  # the last score of the first run

        second = await start_gateway(nursery, cfg, feeds=True)
        old = {r["match_id"]: r for r in await _live_points(second, key)}[match_id]  # ended before serving
        while not [r for r in await _live_points(second, key)  # noqa: ASYNC110 (a client polling REST)
                   if r["state"]["status"] != "final"]:
            await trio.sleep(0.05)  # the new run's first plays
        snap = await _live_snapshot(second, key)
        second.stop.set()
    assert left["state"]["status"] != "final" and int(left["score_a"]) >= int(before[0]["score_a"])  # still in play
    assert old["state"]["status"] == "final" and old["last_play"].startswith("Abandoned")
    assert (old["score_a"], old["score_b"]) == (left["score_a"], left["score_b"])  # the last score stands
    assert match_id not in {r["match_id"] for r in snap["live_state"]}  # not LIVE on the dashboard
    assert match_id not in {r["event_id"] for r in snap["data"]}  # nor its prices in play
    assert snap["live_state"]  # the new run's game is


async def test_games_that_ended_before_a_restart_stay_ended(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    started = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = "2026-05-12_Lakers_Warriors"
    play = {"match_id": event, "sport_key": "basketball_nba", "source": "nba_live", "event_type": "game_end",
            "team_or_player_a": "Lakers", "team_or_player_b": "Warriors", "score_a": "101", "score_b": "99",
            "state": {"period": 4, "clock": "0:00", "status": "final"}, "occurred_at_ms": int(time.time() * 1000)}
    with trio.fail_after(15):
        first = await start_gateway(nursery, cfg)
        key, ingest = first.key(), first.key(scopes=("ingest",))
        async with first.client() as c:
            await push(c, ingest, [quote(-110, event=event, commence_time=started)])
            await push(c, ingest, [play], path="/v1/ingest/pbp")
        assert event not in {r["event_id"] for r in (await _live_snapshot(first, key))["data"]}
        first.stop.set()
        await first.done.wait()
        second = await start_gateway(nursery, cfg)
        snap = await _live_snapshot(second, key)
        second.stop.set()
    assert event not in {r["event_id"] for r in snap["data"]}  # it started 30 min ago, yet it is over

"""The NBA live-data feed against a real local HTTP upstream; primary/secondary failover end to end."""

from __future__ import annotations

import copy
import json
import random
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.config import FeedConfig
from gateway.core.time import ms_from_iso
from gateway.feeds.http import Backoff
from gateway.feeds.nba_live import (
    PBP_PATH,
    SCOREBOARD_PATH,
    NbaLivePoller,
    NbaLiveState,
    event_type,
    nba_clock,
    run_nba_live,
)
from gateway.feeds.runner import feed_function
from tests.conftest import make_config, start_gateway
from tests.helpers import Event, sse_events
from tests.upstream import MemorySink, Reply, Upstream, load, serve_upstream

GAME = "0042400311"
BOARD = load("nba_scoreboard.json")
V1 = load(f"nba_pbp_{GAME}_v1.json")
V2 = load(f"nba_pbp_{GAME}_v2.json")
PBP = PBP_PATH.format(game_id=GAME)


def extend(data: dict[str, Any], n: int) -> dict[str, Any]:
    """The play-by-play with `n` more made twos by the Lakers appended."""
    out = copy.deepcopy(data)
    actions = out["game"]["actions"]
    for _ in range(n):
        last = actions[-1]
        actions.append({**last, "actionNumber": last["actionNumber"] + 2, "actionType": "2pt", "subType": "Layup",
                        "shotResult": "Made", "period": 3, "clock": f"PT11:{40 - len(actions) % 40:02d}.00",
                        "scoreHome": str(int(last["scoreHome"]) + 2), "description": f"Layup #{len(actions)}"})
    return out


def board(status: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = copy.deepcopy(BOARD)
    out["scoreboard"]["games"][0]["gameStatus"] = status
    return out


def feed(url: str = "", **kw: Any) -> FeedConfig:
    return FeedConfig(type="nba_live", base_url=url, interval_s=0.05, **kw)


def fast() -> Backoff:
    return Backoff(start_s=0.02, cap_s=0.1, rng=random.Random(2))


@pytest.mark.parametrize(("raw", "out"), [("PT02:14.00", "PT2:14"), ("PT00:05.30", "PT0:05.3"),
                                          ("PT12:00.00", "PT12:00"), ("PT11M42.00S", "PT11:42"), ("", None),
                                          (None, None), ("weird", "weird")])
def test_clock(raw: Any, out: str | None) -> None:
    assert nba_clock(raw) == out


@pytest.mark.parametrize(("action", "kind"), [
    ({"actionType": "2pt", "shotResult": "Made"}, "made_2"),
    ({"actionType": "2pt", "shotResult": "Missed"}, "missed_2"),
    ({"actionType": "3pt", "shotResult": "Made"}, "made_3"),
    ({"actionType": "3pt", "shotResult": "Missed"}, "missed_3"),
    ({"actionType": "freethrow", "shotResult": "Made"}, "free_throw_made"),
    ({"actionType": "freethrow", "shotResult": "Missed"}, "free_throw_missed"),
    ({"actionType": "period", "subType": "start"}, "period_start"),
    ({"actionType": "period", "subType": "end"}, "period_end"),
    ({"actionType": "game", "subType": "end"}, "game_end"), ({"actionType": "rebound"}, "rebound"),
    ({"actionType": "jumpball"}, "jumpball"), ({"actionType": "instantreplay"}, "other"), ({}, "other"),
])
def test_event_types(action: dict[str, Any], kind: str) -> None:
    assert event_type(action) == kind


async def test_each_action_of_a_live_game_becomes_one_play() -> None:
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(SCOREBOARD_PATH, Reply(BOARD))
            up.route(PBP, Reply(V1), Reply(V2))
            sink = MemorySink()
            poller = NbaLivePoller(feed(up.url), sink, client, NbaLiveState())
            for _ in range(3):
                assert await poller.round() == (0.05, True)
    assert [len(b) for b in sink.play_batches] == [30, 7]  # the third poll had nothing new
    assert {r.path for r in up.requests} == {SCOREBOARD_PATH, PBP}  # scheduled and final games: no requests
    plays = sink.plays
    assert [p.description for p in plays] == [a["description"] for a in V2["game"]["actions"]]
    assert {p.event_type for p in plays} >= {
        "period_start", "jumpball", "made_2", "missed_2", "made_3", "missed_3", "free_throw_made",
        "free_throw_missed", "rebound", "turnover", "steal", "foul", "block", "timeout", "substitution",
        "violation", "period_end", "other"}
    three = next(p for p in plays if p.description.startswith("A. Reaves 25'"))
    action = next(a for a in V1["game"]["actions"] if a["description"] == three.description)
    assert (three.match_id, three.sport_key, three.source, three.role) == (
        GAME, "basketball_nba", "nba_live", "primary")
    assert (three.event_type, three.team_or_player_a, three.team_or_player_b) == ("made_3", "Lakers", "Thunder")
    assert (three.score_a, three.score_b, three.period, three.clock) == ("5", "0", 1, "PT11:05")
    assert three.occurred_at_ms == ms_from_iso(action["timeActual"]) and three.status == "in_progress"
    assert plays[-1].event_type == "period_end" and plays[-1].status == "halftime"
    assert (plays[-1].score_a, plays[-1].score_b) == ("13", "12")


async def test_game_end_is_final_once() -> None:
    with_end = extend(V2, 0)
    with_end["game"]["actions"].append({"actionNumber": 999, "clock": "PT00:00.00", "period": 4,
                                        "actionType": "game", "subType": "end", "description": "Game End",
                                        "scoreHome": "101", "scoreAway": "99"})
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(SCOREBOARD_PATH, Reply(BOARD))
            up.route(PBP, Reply(with_end))
            sink = MemorySink()
            poller = NbaLivePoller(feed(up.url), sink, client, NbaLiveState())
            await poller.round()
            last = sink.plays[-1]
            assert (last.event_type, last.status, last.score_a, last.score_b) == ("game_end", "final", "101", "99")
            # a file without the game end, but the scoreboard says final: one synthetic end play
            up.route(PBP, Reply(V2))
            up.route(SCOREBOARD_PATH, Reply(board()), Reply(board(status=3)))
            sink2 = MemorySink()
            poller2 = NbaLivePoller(feed(up.url), sink2, client, NbaLiveState())
            for _ in range(3):
                await poller2.round()
            pbp_polls = len(up.hits(PBP))
    assert [len(b) for b in sink2.play_batches] == [37, 1]
    end = sink2.plays[-1]
    assert (end.event_type, end.status, end.score_a, end.score_b) == ("game_end", "final", "10", "8")  # board score
    assert pbp_polls == 1 + 2  # nothing is asked of a game once it ended


async def test_recovers_from_upstream_failures_without_resending() -> None:
    text = json.dumps(V1).encode()
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=0.25) as client:
            up.route(SCOREBOARD_PATH, Reply({"message": "boom"}, status=500), Reply(BOARD, delay_s=0.5),
                     Reply(b'{"scoreboard": {"games": [{"gameId"'), Reply(BOARD, cut=50),
                     Reply({}, status=429, headers={"Retry-After": "0.3"}), Reply(BOARD))
            up.route(PBP, Reply(b"<Error><Code>AccessDenied</Code></Error>", status=403),  # not published yet
                     Reply(text[:-40]), Reply({"game": {"gameId": GAME}}), Reply(V1))
            sink = MemorySink()
            state = NbaLiveState()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(run_nba_live, feed(up.url), sink, client=client, state=state,
                                           backoff=fast()))
                await sink.wait_for(lambda: len(sink.plays) >= 30)
                await trio.sleep(0.2)  # a few more rounds: nothing is sent twice
                nursery.cancel_scope.cancel()
            # a restarted task with the same cursors resends nothing either
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(run_nba_live, feed(up.url), sink, client=client, state=state))
                await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
    assert [p.description for p in sink.plays] == [a["description"] for a in V1["game"]["actions"]]
    boards = up.hits(SCOREBOARD_PATH)
    assert boards[5].at - boards[4].at >= 0.29  # Retry-After honoured
    assert len(up.hits(PBP)) > 4


async def test_unusable_parts_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    broken = copy.deepcopy(BOARD)
    del broken["scoreboard"]["games"][0]["homeTeam"]
    pbp = copy.deepcopy(V1)
    del pbp["game"]["actions"][3]["actionNumber"]
    for key in ("scoreHome", "scoreAway", "clock", "period", "description"):
        del pbp["game"]["actions"][5][key]
    with trio.fail_after(5):
        async with serve_upstream() as up, httpx.AsyncClient(timeout=2) as client:
            up.route(SCOREBOARD_PATH, Reply(broken), Reply(BOARD))
            up.route(PBP, Reply(pbp))
            sink = MemorySink()
            poller = NbaLivePoller(feed(up.url), sink, client, NbaLiveState())
            assert await poller.round() == (0.05, True)
            assert sink.plays == []
            await poller.round()
    assert "without gameId or team names skipped" in caplog.text
    assert "1 action(s) without an actionNumber skipped" in caplog.text
    plays = sink.plays
    assert len(plays) == 29
    bare = plays[4]  # the action without score/clock/period keeps the previous ones
    assert (bare.event_type, bare.score_a, bare.clock, bare.period, bare.description) == (
        "made_3", plays[3].score_a, plays[3].clock, 1, "made 3")


def test_feed_functions_are_registered() -> None:
    assert feed_function(feed()) is not feed_function(feed())  # each nba_live feed has its own cursors
    assert feed_function(FeedConfig(type="the_odds_api")).__name__ == "run_the_odds_api"


async def _get(c: httpx.AsyncClient, path: str, key: str, ok: Any) -> Any:
    while True:
        body = (await c.get(path, params={"apiKey": key})).json()
        if ok(body):
            return body
        await trio.sleep(0.05)


async def test_end_to_end_live_points_and_source_health(tmp_path: Path) -> None:
    points, health = "/v1/sports/basketball_nba/live/points", "/v1/sports/basketball_nba/live/source-health"
    with trio.fail_after(10):
        async with serve_upstream() as up, trio.open_nursery() as nursery:
            up.route(SCOREBOARD_PATH, Reply(BOARD))
            up.route(PBP, Reply(V1))
            cfg = make_config(tmp_path, sources={"stale_after_s": 0.5},
                              feeds=[{"type": "nba_live", "base_url": up.url, "interval_s": 0.05}])
            gw = await start_gateway(nursery, cfg, feeds=True)
            key = gw.key()
            async with gw.client() as c:
                rows = await _get(c, points, key, lambda b: bool(b) and b[0]["score_a"] == "10")
                row = rows[0]
                assert (row["match_id"], row["home_team"], row["away_team"], row["score_b"]) == (
                    GAME, "Lakers", "Thunder", "8")
                assert row["state"] == {"period": 1, "clock": "PT7:40", "status": "in_progress"}
                assert row["source"] == "nba_live"
                fresh = await _get(c, health, key, lambda b: b["count"] == 1)
                assert fresh["results"][0]["source"] == "nba_live"
                up.route(SCOREBOARD_PATH, Reply({}, status=503))
                stale = await _get(c, health, key, lambda b: b["results"][0]["status"] == "stale")
                assert stale["results"][0]["events_last_5min"] == 30
            gw.stop.set()
            await gw.done.wait()


async def _collect(c: httpx.AsyncClient, key: str, into: list[Event], **params: Any) -> None:
    async with c.stream("GET", "/v1/sports/basketball_nba/live/sse", params={"apiKey": key, **params}) as resp:
        assert resp.status_code == 200
        async for ev in sse_events(resp):
            if ev.data["type"] in ("pbp_event", "stream_status"):
                into.append(ev)


async def _until(frames: list[Event], n: int) -> None:
    while len(frames) < n:  # noqa: ASYNC110 (a test polling a list another task fills)
        await trio.sleep(0.02)


async def test_end_to_end_failover_to_the_secondary_and_back(tmp_path: Path) -> None:
    v3, v4 = extend(V2, 1), extend(V2, 2)
    with trio.fail_after(10):
        async with serve_upstream() as a, serve_upstream() as b, trio.open_nursery() as nursery:
            for up in (a, b):
                up.route(SCOREBOARD_PATH, Reply(BOARD))
                up.route(PBP, Reply(V1))
            cfg = make_config(tmp_path, feeds=[
                {"type": "nba_live", "base_url": a.url, "interval_s": 0.05, "stale_after_s": 0.5},
                {"type": "nba_live", "name": "nba_backup", "role": "secondary", "base_url": b.url, "interval_s": 0.05},
            ])
            gw = await start_gateway(nursery, cfg, feeds=True)
            key = gw.key()
            frames: list[Event] = []
            async with gw.client() as c:
                nursery.start_soon(partial(_collect, c, key, frames, last_event_id=0))  # from the first play
                await _until(frames, 30)
                await wait_polled(b, 2)
                assert len(frames) == 30 and {f.data["source"] for f in frames} == {"nba_live"}

                a.route(SCOREBOARD_PATH, Reply({}, status=503))  # the primary's upstream dies
                b.route(PBP, Reply(V2))  # the backup's 7 new plays are held ...
                await wait_polled(b, 2)
                await trio.sleep(0.6)
                assert len(frames) == 30
                b.route(PBP, Reply(v3))  # ... and published once the primary has been silent past 0.5 s
                await _until(frames, 39)
                status = frames[30]
                assert status.id is not None and status.event == "stream_status"
                assert {k: status.data[k] for k in ("status", "match_id", "source", "previous_source", "reason")} == {
                    "status": "source_promoted", "match_id": GAME, "source": "nba_backup",
                    "previous_source": "nba_live", "reason": "primary_stale"}
                promoted = [f.data for f in frames[31:]]
                assert {(d["source"], d["role"]) for d in promoted} == {("nba_backup", "primary")}
                assert [d["description"] for d in promoted] == [x["description"] for x in v3["game"]["actions"][30:]]

                a.route(SCOREBOARD_PATH, Reply(BOARD))  # the primary comes back; its 8 catch-up plays are copies
                a.route(PBP, Reply(v3))
                await _until(frames, 40)
                assert frames[39].data["status"] == "source_restored"
                for up in (a, b):
                    up.route(PBP, Reply(v4))
                await _until(frames, 41)
                await wait_polled(a, 2)
                await wait_polled(b, 2)
                assert len(frames) == 41 and frames[40].data["source"] == "nba_live"
                assert frames[40].data["description"] == v4["game"]["actions"][-1]["description"]

                resumed: list[Event] = []  # the status frames are stored: a resume replays them
                nursery.start_soon(partial(_collect, c, key, resumed, last_event_id=frames[29].id))
                await _until(resumed, 11)
                assert [f.id for f in resumed] == [f.id for f in frames[30:]]
                nursery.cancel_scope.cancel()


async def wait_polled(up: Upstream, n: int) -> None:
    """Wait for `n` more scoreboard polls of `up` (each feed round starts with one)."""
    target = len(up.hits(SCOREBOARD_PATH)) + n
    while len(up.hits(SCOREBOARD_PATH)) < target:  # noqa: ASYNC110
        await trio.sleep(0.01)

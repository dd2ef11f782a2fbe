"""The NBA live-data feed: today's scoreboard, then each live game's play-by-play, as plays.

Every `interval_s` the feed reads `{base_url}/static/json/liveData/scoreboard/todaysScoreboard_00.json`
and, for each game in progress (`gameStatus` 2) and each tracked game that has just ended (3),
`.../playbyplay/playbyplay_{gameId}.json`. Actions after the last `actionNumber` seen for the
game become `Play`s, so each action is submitted once; the cursors live in `NbaLiveState`,
which outlives supervisor restarts of the feed task. Finished games never seen live, and
scheduled ones, are skipped. A play-by-play file that is not there yet (403/404) is skipped.

Mapping (CONTRACT.md 5): match_id = gameId, sport_key basketball_nba, team_or_player_a/score_a
= the home team's `teamName` ("Lakers") and score, _b = away. `event_type`: made_2, missed_2,
made_3, missed_3, free_throw_made, free_throw_missed, rebound, turnover, foul, timeout, steal,
block, substitution, jumpball, violation, period_start, period_end, game_end, else other.
Clock: the NBA's ISO duration shortened the way the contract's example writes it:
"PT02:14.00" -> "PT2:14", "PT00:05.30" -> "PT0:05.3". Status: "final" on the game-end action
(or, if the file has none, a synthetic game_end play once the scoreboard says final),
"halftime" on the end of period 2, otherwise "in_progress". occurred_at_ms = timeActual.

Failures as in the_odds_api: a bad scoreboard poll (timeout, 5xx, 429 with Retry-After, bad
JSON) backs off on a capped, jittered ladder; a bad play-by-play poll skips that game this
round (its cursor is unchanged, so the next good poll delivers what was missed).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from ..config import FeedConfig
from ..core.fields import MAX_DESCRIPTION
from ..core.model import Play
from ..core.time import ms_from_iso
from .base import Sink
from .http import Backoff, UpstreamError, default_client, get_json

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://cdn.nba.com"
SCOREBOARD_PATH = "/static/json/liveData/scoreboard/todaysScoreboard_00.json"
PBP_PATH = "/static/json/liveData/playbyplay/playbyplay_{game_id}.json"
SPORT_KEY = "basketball_nba"
SCHEDULED, LIVE, FINAL = 1, 2, 3
PASS_THROUGH = frozenset({"rebound", "turnover", "foul", "timeout", "steal", "block", "substitution",
                          "jumpball", "violation"})
_SHOT = {"2pt": "2", "3pt": "3"}
_CLOCK = re.compile(r"^PT(\d+)M(\d+)(?:\.(\d+))?S$|^PT(\d+):(\d+)(?:\.(\d+))?$")


def nba_clock(clock: object) -> str | None:
    """'PT02:14.00' or 'PT02M14.00S' -> 'PT2:14'; fractions kept when not zero; else as given."""
    if not isinstance(clock, str) or not clock:
        return None
    m = _CLOCK.match(clock)
    if m is None:
        return clock
    minutes, seconds, frac = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
    frac = (frac or "").rstrip("0")
    return f"PT{int(minutes)}:{int(seconds):02d}" + (f".{frac}" if frac else "")


def event_type(action: Mapping[str, Any]) -> str:
    kind = str(action.get("actionType") or "").lower()
    sub = str(action.get("subType") or "").lower()
    made = str(action.get("shotResult") or "").lower() == "made"
    if kind in _SHOT:
        return f"{'made' if made else 'missed'}_{_SHOT[kind]}"
    if kind == "freethrow":
        return "free_throw_made" if made else "free_throw_missed"
    if kind in PASS_THROUGH:
        return kind
    if kind == "period" and sub in ("start", "end"):
        return f"period_{sub}"
    if kind == "game" and sub == "end":
        return "game_end"
    return "other"


@dataclass(slots=True)
class GameCursor:
    """What the feed remembers of one game between polls."""

    game_id: str
    home: str
    away: str
    last_action: int = 0
    score_home: str = "0"
    score_away: str = "0"
    period: int | None = None
    clock: str | None = None
    ended: bool = False


@dataclass(slots=True)
class NbaLiveState:
    games: dict[str, GameCursor] = field(default_factory=dict)


def _score(value: object, fallback: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return fallback


def _occurred(action: Mapping[str, Any], now_ms: int) -> int:
    value = action.get("timeActual")
    if isinstance(value, str):
        try:
            return ms_from_iso(value)
        except ValueError:
            pass
    return now_ms


def action_to_play(action: Mapping[str, Any], game: GameCursor, *, source: str, role: str, now_ms: int) -> Play:
    """One action -> Play; the cursor keeps the score/period/clock for actions that omit them."""
    kind = event_type(action)
    game.score_home = _score(action.get("scoreHome"), game.score_home)
    game.score_away = _score(action.get("scoreAway"), game.score_away)
    period = action.get("period")
    if isinstance(period, int) and not isinstance(period, bool):
        game.period = period
    game.clock = nba_clock(action.get("clock")) or game.clock
    status = "in_progress"
    if kind == "game_end":
        status, game.ended = "final", True
    elif kind == "period_end" and game.period == 2:
        status = "halftime"
    description = action.get("description")
    if not isinstance(description, str) or not description:
        description = kind.replace("_", " ")
    return Play(match_id=game.game_id, sport_key=SPORT_KEY, source=source, role=role, event_type=kind,
                team_or_player_a=game.home, team_or_player_b=game.away, score_a=game.score_home,
                score_b=game.score_away, description=description[:MAX_DESCRIPTION], period=game.period,
                clock=game.clock, occurred_at_ms=_occurred(action, now_ms), captured_at_ms=now_ms, status=status)


def new_plays(data: object, game: GameCursor, *, source: str, role: str, now_ms: int) -> tuple[list[Play], int]:
    """Plays for the actions after the cursor, and how many actions were unusable."""
    root = data.get("game") if isinstance(data, dict) else None
    actions = root.get("actions") if isinstance(root, dict) else None
    if not isinstance(actions, list):
        raise UpstreamError(f"play-by-play {game.game_id}: no game.actions list")
    plays: list[Play] = []
    bad = 0
    for action in actions:
        number = action.get("actionNumber") if isinstance(action, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            bad += 1
            continue
        if number <= game.last_action:
            continue
        plays.append(action_to_play(action, game, source=source, role=role, now_ms=now_ms))
        game.last_action = number
    return plays, bad


def _scoreboard_games(data: object) -> list[dict[str, Any]]:
    board = data.get("scoreboard") if isinstance(data, dict) else None
    games = board.get("games") if isinstance(board, dict) else None
    if not isinstance(games, list):
        raise UpstreamError("scoreboard: no scoreboard.games list")
    return [g for g in games if isinstance(g, dict)]


def _team_name(game: Mapping[str, Any], side: str) -> str | None:
    team = game.get(side)
    name = team.get("teamName") if isinstance(team, dict) else None
    return name if isinstance(name, str) and name else None


class NbaLivePoller:
    def __init__(self, feed: FeedConfig, sink: Sink, client: httpx.AsyncClient, state: NbaLiveState, *,
                 backoff: Backoff | None = None) -> None:
        self.feed, self.sink, self.client, self.state = feed, sink, client, state
        self.base_url = (feed.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.backoff = backoff or Backoff(start_s=min(1.0, feed.interval_s), cap_s=60.0)
        self.rounds = self.failures = self.submitted = 0

    def _cursor(self, g: Mapping[str, Any]) -> GameCursor | None:
        game_id, home, away = g.get("gameId"), _team_name(g, "homeTeam"), _team_name(g, "awayTeam")
        if not isinstance(game_id, str) or not game_id or home is None or away is None:
            logger.warning("feed %s: scoreboard game without gameId or team names skipped: %.200r",
                           self.feed.source, g)
            return None
        cursor = self.state.games.get(game_id)
        if cursor is None:
            cursor = self.state.games[game_id] = GameCursor(game_id, home, away)
        return cursor

    async def poll_game(self, game: GameCursor, final: bool, board: Mapping[str, Any]) -> int:
        url = self.base_url + PBP_PATH.format(game_id=game.game_id)
        resp = await get_json(self.client, url, ok_statuses=(403, 404))
        now_ms = int(time.time() * 1000)
        if resp.data is None:
            logger.debug("feed %s: no play-by-play yet for %s (%d)", self.feed.source, game.game_id, resp.status)
            return 0
        plays, bad = new_plays(resp.data, game, source=self.feed.source, role=self.feed.role, now_ms=now_ms)
        if bad:
            logger.warning("feed %s: %s: %d action(s) without an actionNumber skipped",
                           self.feed.source, game.game_id, bad)
        if final and not game.ended:  # the scoreboard says final but the file has no game end yet
            home, away = board.get("homeTeam") or {}, board.get("awayTeam") or {}
            end = {"actionType": "game", "subType": "end", "description": "Game End",
                   "scoreHome": home.get("score"), "scoreAway": away.get("score")}
            plays.append(action_to_play(end, game, source=self.feed.source, role=self.feed.role, now_ms=now_ms))
        if plays:
            await self.sink.submit_plays(plays)
        self.submitted += len(plays)
        return len(plays)

    async def round(self) -> tuple[float, bool]:
        """Scoreboard, then each live game: (seconds to wait, whether the scoreboard poll went well)."""
        self.rounds += 1
        try:
            resp = await get_json(self.client, self.base_url + SCOREBOARD_PATH)
            games = _scoreboard_games(resp.data)
        except UpstreamError as exc:
            self.failures += 1
            delay = self.backoff.next_delay(exc.retry_after_s or 0.0)
            logger.warning("feed %s: %s; retrying in %.2f s", self.feed.source, exc, delay)
            return delay, False
        self.backoff.reset()
        wait = self.feed.interval_s
        on_board = {g.get("gameId") for g in games}
        for gone in [gid for gid in self.state.games if gid not in on_board]:  # yesterday's games
            del self.state.games[gone]
        for g in games:
            status = g.get("gameStatus")
            if status not in (LIVE, FINAL) or (status == FINAL and g.get("gameId") not in self.state.games):
                continue
            cursor = self._cursor(g)
            if cursor is None or cursor.ended:
                continue
            try:
                await self.poll_game(cursor, status == FINAL, g)
            except UpstreamError as exc:
                logger.warning("feed %s: game %s: %s; retried next round", self.feed.source, cursor.game_id, exc)
                if exc.retry_after_s is not None:
                    return max(wait, exc.retry_after_s), False
        return wait, True


async def run_nba_live(feed: FeedConfig, sink: Sink, *, client: httpx.AsyncClient | None = None,
                       state: NbaLiveState | None = None, backoff: Backoff | None = None) -> None:
    """The feed task: poll forever. `client` and `state` are injectable (tests, restarts)."""
    own = client is None
    http = client if client is not None else default_client()
    try:
        poller = NbaLivePoller(feed, sink, http, state if state is not None else NbaLiveState(), backoff=backoff)
        while True:
            started = trio.current_time()
            delay, ok = await poller.round()
            await trio.sleep_until((started if ok else trio.current_time()) + delay)
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await http.aclose()


def nba_live_feed() -> Callable[[FeedConfig, Sink], Awaitable[None]]:
    """A feed function with its own cursors, shared by every restart of the task (no re-sends)."""
    state = NbaLiveState()

    async def run(feed: FeedConfig, sink: Sink) -> None:
        await run_nba_live(feed, sink, state=state)

    return run

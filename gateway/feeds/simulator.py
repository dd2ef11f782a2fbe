"""The simulator feed: synthetic but realistic markets, props and plays for a fresh install.

`Simulator` is deterministic given its `random.Random` and the times passed to it (it never
reads a clock), so tests and the demo recording are reproducible. Each sport keeps
`events_per_sport` events: about half are live at the start, the rest begin an hour or more
later; a finished game is replaced by a newly scheduled one, so the feed runs forever.
`run_simulator` is the feed task: step, submit, sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ..config import FeedConfig
from ..core.model import Play, Quote
from ..core.time import iso_from_ms
from .base import Sink
from .sim_baseball import BaseballGame
from .sim_games import BasketballGame, FootballGame, Game, GenericGame, HockeyGame, SimPlay, SoccerGame
from .sim_market import SUSPEND_ON_SCORE, EventMarkets, Unit, build_units
from .sim_sports import FIRST_NAMES, LAST_NAMES, SportProfile, full_name, profile_for, short_name

DEFAULT_SPORTS = ("basketball_nba", "baseball_mlb", "soccer_epl", "americanfootball_nfl", "icehockey_nhl")
ENGINES: dict[str, type[Game]] = {
    "basketball": BasketballGame, "baseball": BaseballGame, "soccer": SoccerGame,
    "football": FootballGame, "hockey": HockeyGame, "generic": GenericGame,
}
EXTRA_NAMES_PER_SIDE = 3  # players who appear in plays without props of their own
NEXT_GAME_MIN = (15, 90)  # a replacement game starts this many minutes after the final


@dataclass(slots=True)
class SimEvent:
    id: str
    profile: SportProfile
    home: str
    away: str
    commence_ms: int
    markets: EventMarkets
    labels: tuple[str, str]  # short team names for play descriptions
    names: tuple[list[str], list[str]]  # player names per side (home, away)
    game: Game | None = None
    quoted: bool = False  # its opening prices went out


class Simulator:
    """Steps a board of events: `step(now_ms)` returns the changed quotes and the new plays."""

    def __init__(self, sports: Sequence[str], *, events_per_sport: int = 4, rng: random.Random,
                 now_ms: int, source: str = "simulator") -> None:
        if events_per_sport < 1:
            raise ValueError("events_per_sport must be at least 1")
        self._rng = rng
        self._source = source
        self._events: list[SimEvent] = []
        self._ids: set[str] = set()  # membership only: never iterated, so hash order is harmless
        self._first = True
        self._last_ms = now_ms
        self._sharp_done = 0
        for sport in dict.fromkeys(sports):  # dedupe, keep order
            profile = profile_for(sport)
            for i in range(events_per_sport):
                if i % 2 == 0:  # live now, somewhere between tip-off and the last minutes
                    start = now_ms - int(rng.uniform(0.1, 0.8) * profile.wall_s * 1000)
                else:
                    start = now_ms + rng.randint(60, 180) * 60_000
                self._events.append(self._new_event(profile, start - start % 60_000, now_ms))

    @property
    def events(self) -> list[SimEvent]:
        return list(self._events)

    @property
    def sharp_moves(self) -> int:
        """Sharp moves so far (for tests and the bench)."""
        return self._sharp_done + sum(ev.markets.sharp_moves for ev in self._events)

    def step(self, now_ms: int) -> tuple[list[Quote], list[Play]]:
        quotes: list[Quote] = []
        plays: list[Play] = []
        first, self._first = self._first, False
        dt_s, self._last_ms = max(0, now_ms - self._last_ms) / 1000, max(now_ms, self._last_ms)
        for idx, ev in enumerate(self._events):
            plays.extend(self._advance_game(ev, now_ms, first))
            ev.markets.step(dt_s, live=ev.game is not None)
            # a game already under way when it was listed (at start) gets its opening prices
            # a minute before its start: every started game has a closing line (issue 15.2)
            at = now_ms if ev.quoted or now_ms < ev.commence_ms else ev.commence_ms - 60_000
            ev.quoted = True
            quotes.extend(ev.markets.collect(_QuoteMaker(ev, at)))
            if ev.game is not None and ev.game.final:
                self._sharp_done += ev.markets.sharp_moves
                minutes = self._rng.randint(*NEXT_GAME_MIN)
                start = now_ms + minutes * 60_000
                self._events[idx] = self._new_event(ev.profile, start - start % 60_000, now_ms)
        return quotes, plays

    def _advance_game(self, ev: SimEvent, now_ms: int, first: bool) -> list[Play]:
        if ev.game is None:
            if now_ms < ev.commence_ms:
                return []
            ev.game = self._start_game(ev)
        game = ev.game
        before, prior = list(game.score), game.last
        sims = game.advance(now_ms)
        if first and prior is not None:
            sims.insert(0, prior)  # the first step shows the state of games already under way
        diff = (game.score[0] - before[0]) - (game.score[1] - before[1])
        if diff:
            suspend = self._rng.random() < SUSPEND_ON_SCORE.get(ev.profile.engine, 1.0)
            ev.markets.apply_score(diff, ev.profile.score_weight, suspend=suspend)
        return [self._play(ev, sp, now_ms) for sp in sims]

    def _start_game(self, ev: SimEvent) -> Game:
        return ENGINES[ev.profile.engine](ev.labels, ev.commence_ms, self._rng, ev.names)

    def _play(self, ev: SimEvent, sp: SimPlay, now_ms: int) -> Play:
        return Play(
            match_id=ev.id, sport_key=ev.profile.key, source=self._source, role="primary",
            event_type=sp.event_type, team_or_player_a=ev.home, team_or_player_b=ev.away,
            score_a=str(sp.home_score), score_b=str(sp.away_score), description=sp.description,
            period=sp.period, clock=sp.clock, occurred_at_ms=sp.at_ms, captured_at_ms=now_ms, status=sp.status,
        )

    def _new_event(self, profile: SportProfile, start_ms: int, now_ms: int) -> SimEvent:
        rng = self._rng
        home, away = self._pick_teams(profile)
        n_roles = len(profile.roles)
        pool = rng.sample(range(len(FIRST_NAMES) * len(LAST_NAMES)), 2 * (n_roles + EXTRA_NAMES_PER_SIDE))
        names = [f"{FIRST_NAMES[k // len(LAST_NAMES)]} {LAST_NAMES[k % len(LAST_NAMES)]}" for k in pool]
        per_side = n_roles + EXTRA_NAMES_PER_SIDE
        side_names = (names[:per_side], names[per_side:])
        # the first len(roles) names of each side carry props, one role each
        props = [(side_names[s][r], profile.roles[r]) for r in range(n_roles) for s in (0, 1)]
        ev = SimEvent(
            id=self._event_id(start_ms, home, away),
            profile=profile,
            home=full_name(home),
            away=full_name(away),
            commence_ms=start_ms,
            markets=EventMarkets(build_units(profile, props, rng), rng),
            labels=(short_name(home).replace("_", " "), short_name(away).replace("_", " ")),
            names=side_names,
        )
        if start_ms <= now_ms:  # already under way: play it silently up to now
            ev.game = self._start_game(ev)
            ev.game.advance(now_ms)
        return ev

    def _pick_teams(self, profile: SportProfile) -> tuple[str, str]:
        busy = {t for ev in self._events if ev.profile.key == profile.key for t in (ev.home, ev.away)}
        free = [t for t in profile.teams if full_name(t) not in busy]
        if len(free) < 2:  # more events than pairs of teams: allow repeats
            free = list(profile.teams)
        home, away = self._rng.sample(free, 2)
        return home, away

    def _event_id(self, start_ms: int, home: str, away: str) -> str:
        # the start's minute is in the id: a restarted simulator (a new board) does not reuse
        # the ids of the games the last run left, which the gateway ends at start
        when = iso_from_ms(start_ms)
        base = f"{when[:10]}_{when[11:13]}{when[14:16]}_{short_name(home)}_{short_name(away)}"
        eid, n = base, 1
        while eid in self._ids:
            n += 1
            eid = f"{base}_{n}"
        self._ids.add(eid)
        return eid


def abandoned_plays(rows: Sequence[tuple[Any, ...]], *, source: str, now_ms: int) -> list[Play]:
    """The final play of each game a previous run of this simulator left in play (rows of
    `store.open_matches`). A restarted simulator starts a new board: the games it had running
    can never finish, so the gateway ends them at start (the last score stands) instead of
    showing them live forever."""
    plays = []
    for match_id, sport, home, away, score_a, score_b, period, clock in rows:
        if isinstance(period, str) and period.isdigit():  # live_state keeps the period as text
            period = int(period)
        plays.append(Play(match_id=match_id, sport_key=sport, source=source, role="primary", event_type="game_end",
                          team_or_player_a=home, team_or_player_b=away, score_a=score_a, score_b=score_b,
                          description="Abandoned: the simulator restarted (this game has no result)",
                          period=period, clock=clock, occurred_at_ms=now_ms, captured_at_ms=now_ms, status="final"))
    return plays


class _QuoteMaker:
    """Builds the Quote for one cell of one event at one step."""

    __slots__ = ("ev", "now_ms")

    def __init__(self, ev: SimEvent, now_ms: int) -> None:
        self.ev = ev
        self.now_ms = now_ms

    def __call__(self, u: Unit, book: str, outcome: str, price: int, point: float | None,
                 status: str = "open") -> Quote:
        ev = self.ev
        return Quote(ev.profile.key, ev.id, ev.home, ev.away, ev.commence_ms, book, u.market_key,
                     outcome, price, point, u.player, self.now_ms, status, "score" if status == "suspended" else None)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def run_simulator(feed: FeedConfig, sink: Sink) -> None:
    """The simulator feed task: step every `interval_s`, forever."""
    rng = random.Random(feed.seed)  # seed None: fresh entropy, a different board each start
    sim = Simulator(feed.sports or DEFAULT_SPORTS, events_per_sport=feed.events_per_sport, rng=rng,
                    now_ms=_now_ms(), source=feed.source)
    while True:
        quotes, plays = sim.step(_now_ms())
        if quotes:
            await sink.submit_quotes(quotes, source=feed.source)
        if plays:
            await sink.submit_plays(plays)
        await trio.sleep(feed.interval_s)

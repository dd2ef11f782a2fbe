"""Play engines for the simulator: live games that emit plays in wall-clock time.

Deterministic given the `random.Random` passed in and the times asked for; nothing here
reads a clock. Game clocks run in real time (one game second per wall second) without
stoppages, so a basketball game lasts about an hour of wall time; baseball, which has no
clock, takes about 35 s per plate appearance. Side 0 is home, side 1 is away.
Clocks are "M:SS": time left in the period, except soccer, which counts up ("67:12").
Baseball has no clock: `clock` is "top" or "bottom" of the inning in `period`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimPlay:
    at_ms: int
    event_type: str
    description: str
    home_score: int
    away_score: int
    period: int
    clock: str | None
    status: str


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Game:
    """A live game from `start_ms`; `advance(now_ms)` returns the plays up to `now_ms`."""

    def __init__(self, teams: tuple[str, str], start_ms: int, rng: random.Random,
                 players: tuple[Sequence[str], Sequence[str]]) -> None:
        self.teams = teams
        self.players = players
        self.rng = rng
        self.score = [0, 0]
        self.period = 1
        self.status = "in_progress"
        self.final = False
        self.next_ms = start_ms
        self.last: SimPlay | None = None

    def advance(self, now_ms: int) -> list[SimPlay]:
        out: list[SimPlay] = []
        while not self.final and self.next_ms <= now_ms:
            at = self.next_ms
            gap_s = self._tick(at, out)
            self.next_ms = at + max(1, int(gap_s * 1000))
        return out

    def clock(self) -> str | None:
        raise NotImplementedError

    def _tick(self, at_ms: int, out: list[SimPlay]) -> float:
        """Emit the play(s) at `at_ms`; return seconds until the next tick."""
        raise NotImplementedError

    def emit(self, out: list[SimPlay], at_ms: int, event_type: str, description: str,
             side: int | None = None, pts: int = 0) -> None:
        if side is not None:
            self.score[side] += pts
        play = SimPlay(at_ms, event_type, description, self.score[0], self.score[1],
                       self.period, self.clock(), self.status)
        out.append(play)
        self.last = play

    def player(self, side: int) -> str:
        names = self.players[side]
        return self.rng.choice(names) if names else self.teams[side]

    def finish(self, at_ms: int, out: list[SimPlay]) -> None:
        self.status = "final"
        home, away = self.teams
        self.emit(out, at_ms, "game_end", f"Final: {home} {self.score[0]}, {away} {self.score[1]}")
        self.final = True


class TimedGame(Game):
    """Periods with a running clock, overtime rules and breaks; subclasses add `_play`."""

    periods = 4
    period_s = 720
    count_up = False
    mean_gap_s = 14.0
    ot_s = 0  # 0: a tie after regulation is final
    max_ot: int | None = None  # None: overtime until someone leads
    sudden_death = False
    shootout = False
    break_s = 60.0
    halftime_s = 180.0

    def __init__(self, teams: tuple[str, str], start_ms: int, rng: random.Random,
                 players: tuple[Sequence[str], Sequence[str]]) -> None:
        super().__init__(teams, start_ms, rng, players)
        self.remaining = float(self.period_s)
        self.phase = "start"
        self.side = rng.randrange(2)  # who has the ball, where that matters

    def clock(self) -> str:
        if self.count_up:
            secs = int((self.period - 1) * self.period_s + self.period_s - self.remaining)
        else:
            secs = int(self.remaining)
        return f"{secs // 60}:{secs % 60:02d}"

    def _tick(self, at_ms: int, out: list[SimPlay]) -> float:
        if self.phase == "start":
            self.emit(out, at_ms, "period_start", f"Start of the {self._period_name()}")
            self.phase = "play"
            return self._schedule()
        if self.phase == "end":
            return self._end_period(at_ms, out)
        self._play(out, at_ms)
        if self.sudden_death and self.period > self.periods and self.score[0] != self.score[1]:
            self.phase = "end"  # a score in sudden-death overtime ends it with time left
            return 1.0
        return self._schedule()

    def _schedule(self) -> float:
        gap = 1.0 + self.rng.expovariate(1.0 / self.mean_gap_s)
        if gap >= self.remaining:
            gap = self.remaining
            self.phase = "end"
        self.remaining -= gap
        return gap

    def _period_name(self) -> str:
        if self.period > self.periods:
            n = self.period - self.periods
            return "overtime" if n == 1 else f"{ordinal(n)} overtime"
        unit = {2: "half", 4: "quarter"}.get(self.periods, "period")
        return f"{ordinal(self.period)} {unit}"

    def _end_period(self, at_ms: int, out: list[SimPlay]) -> float:
        tied = self.score[0] == self.score[1]
        ot_done = self.max_ot is not None and self.period >= self.periods + self.max_ot
        if self.period >= self.periods and (not tied or not self.ot_s or ot_done):
            self.emit(out, at_ms, "period_end", f"End of the {self._period_name()}")
            if tied and self.shootout:
                side = self.rng.randrange(2)
                self.emit(out, at_ms, "shootout", f"{self.teams[side]} win the shootout", side, 1)
            self.finish(at_ms, out)
            return 0.0
        halftime = self.periods % 2 == 0 and self.period == self.periods // 2
        self.status = "halftime" if halftime else "in_progress"
        self.emit(out, at_ms, "period_end", f"End of the {self._period_name()}")
        self.status = "in_progress"
        self.period += 1
        self.remaining = float(self.period_s if self.period <= self.periods else self.ot_s)
        self.phase = "start"
        return self.halftime_s if halftime else self.break_s

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        raise NotImplementedError


class BasketballGame(TimedGame):
    ot_s = 300

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        rng, side = self.rng, self.side
        other, p, r = 1 - side, self.player(side), rng.random()
        if r < 0.33:
            self.emit(out, at_ms, "made_2", f"{p} makes a {rng.choice(('layup', 'jump shot', 'dunk'))}", side, 2)
        elif r < 0.45:
            self.emit(out, at_ms, "made_3", f"{p} makes a 3-pt jump shot", side, 3)
        elif r < 0.55:
            self.emit(out, at_ms, "foul", f"Shooting foul on {self.player(other)}")
            for k in (1, 2):
                made = rng.random() < 0.77
                verb = "makes" if made else "misses"
                self.emit(out, at_ms, "free_throw", f"{p} {verb} free throw {k} of 2", side, int(made))
        elif r < 0.63:
            kind = rng.choice(("bad pass", "traveling", "lost ball", "offensive foul"))
            self.emit(out, at_ms, "turnover", f"{p} turnover ({kind})")
        elif r < 0.95:
            offensive = rng.random() < 0.25
            reb = side if offensive else other
            shot = rng.choice(("jump shot", "3-pt shot", "layup"))
            text = f"{p} misses a {shot}; {self.player(reb)} {'offensive' if offensive else 'defensive'} rebound"
            self.emit(out, at_ms, "rebound", text)
            if offensive:
                return
        elif r < 0.98:
            self.emit(out, at_ms, "timeout", f"{self.teams[side]} timeout")
            return
        else:
            self.emit(out, at_ms, "foul", f"Personal foul on {self.player(other)}")
            return
        self.side = other


class SoccerGame(TimedGame):
    periods, period_s, count_up, mean_gap_s, halftime_s = 2, 2700, True, 45.0, 300.0

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        rng = self.rng
        side = 0 if rng.random() < 0.54 else 1  # home advantage
        p, team, r = self.player(side), self.teams[side], rng.random()
        if r < 0.32:
            on_target = rng.random() < 0.35
            if on_target and rng.random() < 0.2:
                self.emit(out, at_ms, "goal", f"GOAL! {p} scores for {team}", side, 1)
            else:
                self.emit(out, at_ms, "shot", f"{p} shot {'saved' if on_target else 'off target'}")
        elif r < 0.45:
            self.emit(out, at_ms, "corner", f"Corner kick for {team}")
        elif r < 0.75:
            self.emit(out, at_ms, "foul", f"Foul by {p}")
            if rng.random() < 0.13:
                self.emit(out, at_ms, "yellow_card", f"Yellow card for {p}")
        elif r < 0.83:
            self.emit(out, at_ms, "offside", f"{p} caught offside")
        elif r < 0.86 and self.period == 2:
            self.emit(out, at_ms, "substitution", f"Substitution for {team}")
        else:
            self.emit(out, at_ms, "free_kick", f"Free kick for {team}")


class HockeyGame(TimedGame):
    periods, period_s, mean_gap_s, ot_s, max_ot = 3, 1200, 22.0, 300, 1
    sudden_death, shootout, break_s = True, True, 120.0

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        rng = self.rng
        side = 0 if rng.random() < 0.52 else 1
        p, r = self.player(side), rng.random()
        if r < 0.42:
            if rng.random() < 0.095:
                self.emit(out, at_ms, "goal", f"GOAL! {p} scores for {self.teams[side]}", side, 1)
            else:
                self.emit(out, at_ms, "shot", f"{p} shot on goal, saved")
        elif r < 0.62:
            self.emit(out, at_ms, "faceoff", f"{p} wins the faceoff")
        elif r < 0.78:
            self.emit(out, at_ms, "hit", f"{p} hit on {self.player(1 - side)}")
        elif r < 0.83:
            why = rng.choice(("tripping", "hooking", "slashing", "holding"))
            self.emit(out, at_ms, "penalty", f"{p} 2-minute minor for {why}")
        elif r < 0.93:
            self.emit(out, at_ms, "giveaway", f"Giveaway by {p}")
        else:
            self.emit(out, at_ms, "blocked_shot", f"{p} blocks a shot")


class FootballGame(TimedGame):
    periods, period_s, mean_gap_s, ot_s, max_ot = 4, 900, 28.0, 600, 1
    sudden_death, break_s, halftime_s = True, 90.0, 300.0
    _ENDS = ("touchdown", "field_goal", "punt", "turnover", "downs", "safety")

    def __init__(self, teams: tuple[str, str], start_ms: int, rng: random.Random,
                 players: tuple[Sequence[str], Sequence[str]]) -> None:
        super().__init__(teams, start_ms, rng, players)
        self.drive_left = 0
        self.drive_end = "punt"

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        rng, side = self.rng, self.side
        if self.drive_left == 0:  # a new drive: decide how it ends, then play it out
            self.drive_left = rng.randint(2, 9)
            self.drive_end = rng.choices(self._ENDS, weights=(22, 15, 42, 12, 6, 3))[0]
        self.drive_left -= 1
        p = self.player(side)
        if self.drive_left > 0:
            yards = rng.randint(-3, 18)
            if rng.random() < 0.45:
                self.emit(out, at_ms, "rush", f"{p} rush for {yards} yards")
            elif rng.random() < 0.3:
                self.emit(out, at_ms, "incomplete", f"{p} pass incomplete")
            else:
                self.emit(out, at_ms, "pass", f"{p} pass complete for {yards} yards")
            return
        self._drive_end(out, at_ms, side, p)
        self.side = 1 - side

    def _drive_end(self, out: list[SimPlay], at_ms: int, side: int, p: str) -> None:
        rng, end = self.rng, self.drive_end
        if end == "touchdown":
            self.emit(out, at_ms, "touchdown", f"TOUCHDOWN {self.teams[side]}: {p}", side, 6)
            good = rng.random() < 0.94
            self.emit(out, at_ms, "extra_point", f"Extra point {'good' if good else 'missed'}", side, int(good))
        elif end == "field_goal":
            good = rng.random() < 0.85
            kind = "field_goal" if good else "field_goal_missed"
            self.emit(out, at_ms, kind, f"{rng.randint(22, 55)}-yard field goal {'good' if good else 'no good'}",
                      side, 3 if good else 0)
        elif end == "turnover":
            self.emit(out, at_ms, rng.choice(("interception", "fumble")), f"{p} turns it over")
        elif end == "downs":
            self.emit(out, at_ms, "turnover_on_downs", f"{self.teams[side]} turn it over on downs")
        elif end == "safety":
            self.emit(out, at_ms, "safety", f"Safety: {p} tackled in the end zone", 1 - side, 2)
        else:
            self.emit(out, at_ms, "punt", f"{self.teams[side]} punt")


class GenericGame(TimedGame):
    periods, period_s, mean_gap_s = 2, 1200, 30.0

    def _play(self, out: list[SimPlay], at_ms: int) -> None:
        side = self.rng.randrange(2)
        p = self.player(side)
        if self.rng.random() < 0.2:
            self.emit(out, at_ms, "score", f"{p} scores for {self.teams[side]}", side, 1)
        else:
            self.emit(out, at_ms, "attempt", f"{p} attempt")

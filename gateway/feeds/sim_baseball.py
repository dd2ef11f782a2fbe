"""The simulator's baseball engine: plate appearances, base runners, innings, walk-offs.

Deterministic given its `random.Random`. Baseball has no game clock, so `clock` carries
the half inning ("top" or "bottom") and `period` the inning.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .sim_games import Game, SimPlay, ordinal

# (event_type, cumulative probability, bases for hits); anything past the last is an out
_PA = (("strikeout", 0.22, 0), ("out", 0.67, 0), ("walk", 0.755, 0), ("single", 0.905, 1),
       ("double", 0.95, 2), ("triple", 0.955, 3), ("home_run", 0.99, 4))
_OUTS = ("grounds out", "flies out", "lines out", "pops out")
_HIT_VERBS = {1: "singles", 2: "doubles", 3: "triples", 4: "homers"}


def advance_runners(bases: list[bool], hit: int) -> tuple[list[bool], int]:
    """Bases after a hit of `hit` bases (4 = home run) and the runs it scores."""
    new, runs = [False, False, False], 0
    for i in (2, 1, 0):
        if bases[i]:
            if i + hit >= 3:
                runs += 1
            else:
                new[i + hit] = True
    if hit >= 4:
        runs += 1
    else:
        new[hit - 1] = True
    return new, runs


def walk_runners(bases: list[bool]) -> tuple[list[bool], int]:
    """A walk forces runners only as far as they must go."""
    b = bases
    runs = 1 if all(b) else 0
    return [True, b[0] or b[1], b[2] or (b[0] and b[1])], runs


class BaseballGame(Game):
    def __init__(self, teams: tuple[str, str], start_ms: int, rng: random.Random,
                 players: tuple[Sequence[str], Sequence[str]]) -> None:
        super().__init__(teams, start_ms, rng, players)
        self.half = 0  # 0 top (away bats), 1 bottom (home bats)
        self.outs = 0
        self.bases = [False, False, False]
        self.phase = "start"

    def clock(self) -> str:
        return "top" if self.half == 0 else "bottom"

    def _tick(self, at_ms: int, out: list[SimPlay]) -> float:
        if self.phase == "start":
            self.emit(out, at_ms, "inning_start", f"{self.clock().title()} of the {ordinal(self.period)}")
            self.phase = "play"
            return 20.0 + self.rng.expovariate(0.1)
        bat = 1 if self.half == 0 else 0
        self._plate_appearance(out, at_ms, bat)
        if self.half == 1 and self.period >= 9 and self.score[0] > self.score[1]:
            self.finish(at_ms, out)  # walk-off
            return 0.0
        if self.outs >= 3:
            return self._end_half(at_ms, out)
        return 15.0 + self.rng.expovariate(0.05)

    def _plate_appearance(self, out: list[SimPlay], at_ms: int, bat: int) -> None:
        p, r = self.player(bat), self.rng.random()
        kind, bases_hit = next(((k, n) for k, cum, n in _PA if r < cum), ("out", 0))
        if kind == "strikeout":
            self.outs += 1
            self.emit(out, at_ms, kind, f"{p} strikes out")
        elif kind == "out":
            self.outs += 1
            self.emit(out, at_ms, kind, f"{p} {self.rng.choice(_OUTS)}")
        else:
            if kind == "walk":
                self.bases, runs = walk_runners(self.bases)
                text = f"{p} walks"
            else:
                self.bases, runs = advance_runners(self.bases, bases_hit)
                text = f"{p} {_HIT_VERBS[bases_hit]}"
            if runs:
                text += f", {runs} run{'s' if runs > 1 else ''} score{'' if runs > 1 else 's'}"
            self.emit(out, at_ms, kind, text, bat, runs)

    def _end_half(self, at_ms: int, out: list[SimPlay]) -> float:
        self.emit(out, at_ms, "inning_end", f"End of the {self.clock()} of the {ordinal(self.period)}")
        home_leads, tied = self.score[0] > self.score[1], self.score[0] == self.score[1]
        if self.period >= 9 and ((self.half == 0 and home_leads) or (self.half == 1 and not tied)):
            self.finish(at_ms, out)
            return 0.0
        if self.half == 1:
            self.period += 1
        self.half = 1 - self.half
        self.outs = 0
        self.bases = [False, False, False]
        self.phase = "start"
        return 60.0

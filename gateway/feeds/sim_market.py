"""Prices for one simulated event: fair probabilities random-walk, books follow with lag.

Each market (a "unit": h2h, spreads, totals, or one player's prop) has a fair probability
per outcome. Every book holds its own view of it (fair at the time it last repriced, plus a
standing bias) and quotes that view with its own vig and rounding. Each (unit, book) pair
reprices at random moments, as a Poisson process whose mean interval depends on the market
and on whether the game is in play (REPRICE_S: the rates and where they come from are in
README, "Simulator rates"); a reprice that lands on the same rounded price changes nothing.
A sharp move jumps the fair price and one book at once, and the others follow within
seconds; a live score moves the moneyline and the spread at every book, which (in most
sports) suspend those markets first and reopen them a few seconds later at the new price
(SUSPEND_S); the reopening prices are drops with `after_suspension`. Rates are per
second of simulated time, so they do not depend on the feed's step interval.
Deterministic given the rng and the times.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.model import Quote
from ..core.odds import american_to_probability, from_cents, probability_to_american, to_cents
from .sim_sports import BOOKS, PROP_VIG_FACTOR, Book, SportProfile

# random walks per sqrt(second), (pre-game, in play): of the home log-odds, and of a two-way
# line's first-side probability. Pre-game a moneyline wanders ~15 cents a day; in play, some
# cents a minute besides what scores do
H2H_SIGMA = {False: 0.0005, True: 0.004}
LINE_SIGMA = {False: 0.0001, True: 0.0008}
H2H_REVERT = 0.0002  # per second: pre-game moneylines drift back toward their opening level
LINE_BAND = (0.4, 0.6)  # outside this the point moves by a step instead of the price
LINE_SHIFT_P = 0.06  # how much a half-point move changes the side's probability
VIEW_NOISE = 0.003
# mean seconds between two reprices of one (unit, book) pair: (game markets, props), pre-game
# and in play. In play: about The Odds API's 40 s in-play refresh of featured markets (and its
# 60 s for additional markets, doubled for props); pre-game, a book touches a line a few times
# an hour (README, "Simulator rates")
REPRICE_S = {False: (600.0, 1800.0), True: (40.0, 120.0)}
SHARP_S = {False: 1800.0, True: 240.0}  # mean seconds between sharp moves of one event
SHARP_ON_PROPS = 0.3  # share of sharp moves that hit a player prop (the rest: moneyline, spread, total)
FOLLOW_S = (1.0, 15.0)  # other books copy a sharp move within this many seconds
REACT_S = (0.0, 1.5)  # every book reprices the moneyline and spread this soon after a live score
LINE_FOLLOW_S = (1.0, 20.0)  # books move to a new line one by one within this many seconds
SUSPEND_S = (2.0, 6.0)  # after a score that suspends, a book reopens its markets this much later
# the chance that a score suspends the moneyline and spread at every book, per play engine:
# a goal, touchdown or run does; most baskets do not (books keep basketball lines open)
SUSPEND_ON_SCORE = {"soccer": 1.0, "hockey": 1.0, "football": 1.0, "baseball": 1.0, "basketball": 0.1,
                    "generic": 1.0}
BY_KEY = {b.key: b for b in BOOKS}
PER_MARKET_BOOKS = tuple(b for b in BOOKS if b.coverage == "per_market")

# builds a Quote from (unit, book, outcome, price, point); the simulator owns event fields
QuoteFn = Callable[["Unit", str, str, int, "float | None", str], Quote]


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass(slots=True)
class View:
    probs: tuple[float, ...]
    point: float | None


@dataclass(slots=True)
class Unit:
    market_key: str
    player: str | None
    outcomes: tuple[str, ...]
    fair: list[float]
    point: float | None
    line_step: float  # 0: the point never moves (run line, puck line); only prices do
    books: tuple[Book, ...]
    anchor: float = 0.0  # h2h: opening home log-odds
    bias: dict[str, float] = field(default_factory=dict)  # book -> standing opinion
    views: dict[str, View] = field(default_factory=dict)


def american(prob: float, cents_step: int) -> int:
    """A book's price for an implied probability, rounded to the book's cents step."""
    cents = to_cents(probability_to_american(_clamp(prob, 0.01, 0.985)))
    return from_cents(round(cents / cents_step) * cents_step)


def move_cents(p: float, cents: int) -> float:
    """The probability whose price is `cents` further toward the dog (negative: favourite)."""
    a = probability_to_american(_clamp(p, 0.02, 0.98))
    return _clamp(american_to_probability(from_cents(to_cents(a) + cents)), 0.02, 0.98)


def quote_cells(u: Unit, book: Book, view: View) -> tuple[tuple[int, float | None], ...]:
    """(price, point) per outcome as `book` quotes its view of `u`."""
    if book.coverage == "game_line" and u.market_key in ("spreads", "totals"):
        prices: tuple[int, ...] = (-110, -110)  # game-line books keep the line at standard juice
    else:
        vig = book.vig * (PROP_VIG_FACTOR if u.player is not None else 1.0)
        prices = tuple(american(p * (1.0 + vig), book.cents_step) for p in view.probs)
    pt = view.point
    if pt is None:
        return tuple((price, None) for price in prices)
    points = (pt, -pt + 0.0) if u.market_key == "spreads" else (pt, pt)  # +0.0: no -0.0 lines
    return tuple(zip(prices, points, strict=True))


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's method; a normal approximation for large means)."""
    if mean <= 0.0:
        return 0
    if mean > 30.0:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class EventMarkets:
    """Every unit of one event, the books' views, and which cells changed this step."""

    def __init__(self, units: list[Unit], rng: random.Random) -> None:
        self.units = units
        self.rng = rng
        self.t = 0.0  # seconds of simulated time since the event was listed
        self.sharp_moves = 0
        self._dirty: dict[tuple[int, str], None] = {}  # a dict, not a set: ordered output
        self._emitted: dict[tuple[int, str], tuple[tuple[int, float | None], ...]] = {}
        self._suspended: set[tuple[int, str]] = set()  # (unit, book) pairs suspended after a score
        self._emitted_suspended: set[tuple[int, str]] = set()
        self._pending: list[tuple[float, int, str]] = []  # (due time, unit index, book)
        # the (unit, book) pairs that reprice at random, game markets and props apart
        self._pairs: tuple[list[tuple[int, str]], list[tuple[int, str]]] = ([], [])
        for i, u in enumerate(units):
            for b in u.books:
                u.bias[b.key] = _clamp(rng.gauss(0.0, 0.004), -0.01, 0.01)
                self.reprice(i, b.key)
                self._pairs[u.player is not None].append((i, b.key))

    def reprice(self, i: int, book: str, *, noise: bool = True) -> None:
        u = self.units[i]
        shift = u.bias[book] + (self.rng.gauss(0.0, VIEW_NOISE) if noise else 0.0)
        probs = list(u.fair)
        probs[0] = _clamp(probs[0] + shift, 0.01, 0.99)
        probs[1] = _clamp(probs[1] - shift, 0.01, 0.99)
        u.views[book] = View(tuple(probs), u.point)
        self._dirty[(i, book)] = None
        self._suspended.discard((i, book))  # a reprice reopens a suspended market

    def step(self, dt_s: float, *, live: bool) -> None:
        """`dt_s` seconds pass: drift, the reprices due by chance, maybe a sharp move, then
        the followers whose time has come."""
        if dt_s <= 0.0:
            return
        self.t += dt_s
        rng = self.rng
        root = math.sqrt(dt_s)
        for i, u in enumerate(self.units):
            if u.market_key == "h2h":
                revert = 0.0 if live else H2H_REVERT * dt_s * (u.anchor - _log_odds(u))
                _shift_h2h(u, rng.gauss(0.0, H2H_SIGMA[live] * root) + revert)
            else:
                self._shift_line(i, rng.gauss(0.0, LINE_SIGMA[live] * root))
        for pairs, every_s in zip(self._pairs, REPRICE_S[live], strict=True):
            for _ in range(poisson(rng, len(pairs) * dt_s / every_s) if pairs else 0):
                self.reprice(*rng.choice(pairs))
        for _ in range(poisson(rng, dt_s / SHARP_S[live])):
            self._sharp()
        due = [p for p in self._pending if p[0] <= self.t]
        self._pending = [p for p in self._pending if p[0] > self.t]
        for _, i, book in due:
            self.reprice(i, book)

    def apply_score(self, home_minus_away: int, weight: float, *, suspend: bool = False) -> None:
        """A live score moves the moneyline and the spread; every book reacts within seconds,
        or (`suspend`) suspends them at once and reopens them a few seconds later."""
        for i, u in enumerate(self.units):
            if u.market_key == "h2h":
                _shift_h2h(u, weight * home_minus_away)
            elif u.market_key == "spreads":
                self._shift_line(i, weight * home_minus_away * 0.3)
            else:
                continue
            if suspend:
                for b in u.books:
                    self._suspended.add((i, b.key))
                    self._dirty[(i, b.key)] = None
                self._follow(i, None, *SUSPEND_S)
            else:
                self._follow(i, None, *REACT_S)

    def collect(self, make: QuoteFn) -> list[Quote]:
        """Quotes for every cell whose price or point changed since it was last emitted."""
        out: list[Quote] = []
        for pair in self._dirty:
            i, book = pair
            u = self.units[i]
            old = self._emitted.get(pair)
            if pair in self._suspended:  # the last prices, suspended (once)
                if old is not None and pair not in self._emitted_suspended:
                    self._emitted_suspended.add(pair)
                    out.extend(make(u, book, u.outcomes[k], price, point, "suspended")
                               for k, (price, point) in enumerate(old))
                continue
            cells = quote_cells(u, BY_KEY[book], u.views[book])
            reopened = pair in self._emitted_suspended
            self._emitted_suspended.discard(pair)
            for k, (price, point) in enumerate(cells):
                if old is None or old[k] != (price, point) or reopened:
                    out.append(make(u, book, u.outcomes[k], price, point, "open"))
            self._emitted[pair] = cells
        self._dirty.clear()
        return out

    def _sharp(self) -> None:
        rng = self.rng
        pairs = self._pairs[bool(self._pairs[1]) and rng.random() < SHARP_ON_PROPS]
        i = rng.choice(pairs)[0]
        u = self.units[i]
        cents = rng.randint(10, 40) * rng.choice((-1, 1))
        old = u.fair[0]
        new = move_cents(old, cents)
        if u.line_step:  # keep it a price move: a jump past the band would be a new line
            new = _clamp(new, LINE_BAND[0] + 0.005, LINE_BAND[1] - 0.005)
        if len(u.fair) == 3:  # three-way: the other two outcomes share the change pro rata
            rest = (1.0 - new) / (1.0 - old)
            u.fair = [new, u.fair[1] * rest, u.fair[2] * rest]
        else:
            u.fair = [new, 1.0 - new]
        leaders = [b for b in u.books if b.coverage == "per_market"] or list(u.books)
        leader = rng.choice(leaders).key
        self.reprice(i, leader, noise=False)
        self._follow(i, leader, *FOLLOW_S)
        self.sharp_moves += 1

    def _follow(self, i: int, skip: str | None, lo: float, hi: float) -> None:
        for b in self.units[i].books:
            if b.key != skip:
                self._pending.append((self.t + self.rng.uniform(lo, hi), i, b.key))

    def _shift_line(self, i: int, dp: float) -> None:
        u = self.units[i]
        p = u.fair[0] + dp
        lo, hi = LINE_BAND
        if u.line_step and (p > hi or p < lo) and u.point is not None:
            up = p > hi
            step = u.line_step if up else -u.line_step
            new_point = u.point - step if u.market_key == "spreads" else u.point + step
            if u.player is None or new_point > 0:  # a prop line never drops to zero
                u.point = new_point
                p += -LINE_SHIFT_P if up else LINE_SHIFT_P
                self._follow(i, None, *LINE_FOLLOW_S)  # books move to the new line one by one
        p = _clamp(p, 0.2, 0.8)
        u.fair = [p, 1.0 - p]


def _shift_h2h(u: Unit, x: float) -> None:
    """Move the home side's log-odds by `x`; a draw gets less likely as either side pulls away."""
    if len(u.fair) == 2:
        p = _clamp(1.0 / (1.0 + math.exp(-(_log_odds(u) + x))), 0.02, 0.98)
        u.fair = [p, 1.0 - p]
        return
    h, a, d = u.fair[0] * math.exp(x / 2), u.fair[1] * math.exp(-x / 2), u.fair[2] * math.exp(-abs(x) / 4)
    fair = [_clamp(v / (h + a + d), 0.02, 0.96) for v in (h, a, d)]
    s = sum(fair)
    u.fair = [v / s for v in fair]


def _log_odds(u: Unit) -> float:
    return math.log(u.fair[0] / u.fair[1])


def build_units(profile: SportProfile, players: Sequence[tuple[str, tuple[str, ...]]],
                rng: random.Random) -> list[Unit]:
    """Opening markets of one event: moneyline, spread, total and each player's props."""
    p = rng.uniform(0.28, 0.72)  # home win probability against the away side, draws aside
    if profile.draw:
        draw = rng.uniform(0.22, 0.30)
        h2h = Unit("h2h", None, ("home", "away", "draw"), [p * (1 - draw), (1 - p) * (1 - draw), draw],
                   None, 0.0, BOOKS)
    else:
        h2h = Unit("h2h", None, ("home", "away"), [p, 1 - p], None, 0.0, BOOKS)
    h2h.anchor = _log_odds(h2h)
    if profile.spread_fixed is not None:
        point = -profile.spread_fixed if p > 0.5 else profile.spread_fixed
        cover = (0.42 if p > 0.5 else 0.58) + rng.gauss(0.0, 0.02)
        spreads = Unit("spreads", None, ("home", "away"), [cover, 1 - cover], point, 0.0, BOOKS)
    else:
        mag = math.floor(abs(p - 0.5) * profile.spread_scale) + 0.5
        cover = 0.5 + rng.gauss(0.0, 0.03)
        spreads = Unit("spreads", None, ("home", "away"), [cover, 1 - cover], -mag if p > 0.5 else mag, 0.5, BOOKS)
    over = 0.5 + rng.gauss(0.0, 0.03)
    total = math.floor(rng.uniform(*profile.total)) + 0.5
    units = [h2h, spreads, Unit("totals", None, ("over", "under"), [over, 1 - over], total, 0.5, BOOKS)]
    lines = {m: (lo, hi) for m, lo, hi in profile.prop_lines}
    for name, markets in players:
        for m in markets:
            over = 0.5 + rng.gauss(0.0, 0.03)
            point = math.floor(rng.uniform(*lines.get(m, (1.0, 3.0)))) + 0.5
            units.append(Unit(m, name, ("over", "under"), [over, 1 - over], point, 0.5, PER_MARKET_BOOKS))
    return units

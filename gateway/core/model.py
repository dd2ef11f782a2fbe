"""The domain nouns: quotes, plays and drops, as frozen records.

Pure: standard library only. Times are unix milliseconds (ints) passed in by callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

GAME_MARKETS = ("h2h", "spreads", "totals")
OUTCOMES = ("home", "away", "draw", "over", "under")
# which outcomes each game market may carry; props carry over/under
MARKET_OUTCOMES: dict[str, tuple[str, ...]] = {
    "h2h": ("home", "away", "draw"),
    "spreads": ("home", "away"),
    "totals": ("over", "under"),
}
PROP_OUTCOMES = ("over", "under")
# market state (issue 15): a quote's status; suspension is a state, not a silence
OPEN, SUSPENDED, CLOSED = "open", "suspended", "closed"
STATUSES = (OPEN, SUSPENDED, CLOSED)
NO_PRICE = 0  # a suspension or closing notice without a price: the writer keeps the last price


def is_prop_market(market_key: str) -> bool:
    return market_key not in GAME_MARKETS


def market_label(market_key: str) -> str:
    """`h2h` -> `Moneyline`, `player_points` -> `Points`, `player_pass_yds` -> `Pass Yds`."""
    if market_key in _GAME_MARKET_NAMES:
        return _GAME_MARKET_NAMES[market_key]
    name = market_key.removeprefix("player_").removeprefix("batter_").removeprefix("pitcher_")
    return name.replace("_", " ").title()


_GAME_MARKET_NAMES = {"h2h": "Moneyline", "spreads": "Spread", "totals": "Total"}


def kind_of(market_key: str) -> str:
    """`game` for moneyline/spread/total, `prop` for player markets."""
    return "game" if market_key in GAME_MARKETS else "prop"


@dataclass(frozen=True, slots=True)
class Quote:
    """One book's American price for one outcome at one moment."""

    sport_key: str
    event_id: str
    home_team: str
    away_team: str
    commence_time_ms: int
    bookmaker: str
    market_key: str
    outcome: str
    price: int  # American odds; never in (-100, 100) except 100 itself
    point: float | None
    player: str | None
    observed_at_ms: int
    status: str = OPEN  # open | suspended | closed
    reason: str | None = None  # why a market is suspended or closed (optional)

    @property
    def kind(self) -> str:
        return kind_of(self.market_key)


@dataclass(frozen=True, slots=True)
class Play:
    """One play-by-play event with the score and clock after it."""

    match_id: str
    sport_key: str
    source: str
    role: str
    event_type: str
    team_or_player_a: str
    team_or_player_b: str
    score_a: str
    score_b: str
    description: str
    period: int | None  # the period number (seed page: 4); live_state reports the same int
    clock: str | None
    occurred_at_ms: int
    captured_at_ms: int
    status: str = "in_progress"  # in_progress | halftime | final ...


class Drop(NamedTuple):
    """A price move of one outcome from `prev` to `new` (American odds).

    A NamedTuple, not a frozen dataclass: the detector makes one per price change, and a
    frozen dataclass's __init__ (one object.__setattr__ per field) cost 1.8 us of ~4.3."""

    quote: Quote
    prev: int
    new: int
    delta: int  # new - prev on the cents line (-100 == +100)
    direction: str  # toward_favorite | toward_dog
    elapsed_ms: int  # time since the previous price was observed
    after_suspension: bool = False  # the first price after a suspension, compared with the last before it

    @property
    def delta_cents(self) -> int:
        return abs(self.delta)

"""Price arithmetic: American, decimal and probability odds, and the cents line.

Pure: standard library only. American odds are ints; -100 and +100 are the same price
(even money). The "cents line" is a continuous axis on which that point is counted once,
so -105 -> +105 is a move of 10 cents, not 210.
"""

from __future__ import annotations

import math


class OddsError(ValueError):
    """A price that is not a valid price in the format it claims."""


# |American odds| above this are rejected: no book quotes them, and unbounded ints would
# overflow SQLite's 64-bit INTEGER downstream (decimal 1e308 even overflowed `round`).
MAX_AMERICAN = 1_000_000


def to_cents(american: int) -> int:
    """Position on the cents line: favourites below 0, underdogs above, even money at 0.

    -110 -> -10, -100 -> 0, +100 -> 0, +150 -> +50.
    """
    return american + 100 if american < 0 else american - 100


def from_cents(cents: int) -> int:
    """Inverse of `to_cents`; even money is reported as +100."""
    return cents - 100 if cents < 0 else cents + 100


def cents_delta(prev: int, new: int) -> int:
    """Signed move from prev to new on the cents line (-110 -> -120 is -10)."""
    return to_cents(new) - to_cents(prev)


def direction(prev: int, new: int) -> str | None:
    """`toward_favorite` if the outcome became more likely, `toward_dog` if less, else None.

    Moving down the cents line (+150 -> +130, -110 -> -120) raises implied probability.
    """
    d = cents_delta(prev, new)
    if d < 0:
        return "toward_favorite"
    if d > 0:
        return "toward_dog"
    return None


def validate_american(price: float) -> int:
    """Return `price` as an int American price, or raise OddsError."""
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price):
        raise OddsError("price must be a finite number")
    if price != int(price):
        raise OddsError("American odds must be whole numbers")
    value = int(price)
    if -100 < value < 100:
        raise OddsError("American odds must be <= -100 or >= +100")
    if abs(value) > MAX_AMERICAN:
        raise OddsError(f"American odds must be within +-{MAX_AMERICAN}")
    return value


def decimal_to_american(dec: float) -> int:
    """1.91 -> -110, 2.50 -> +150. Raises OddsError for prices <= 1."""
    if isinstance(dec, bool) or not isinstance(dec, (int, float)) or not math.isfinite(dec):
        raise OddsError("decimal odds must be a finite number")
    if dec <= 1.0:
        raise OddsError("decimal odds must be greater than 1")
    american = (dec - 1.0) * 100 if dec >= 2.0 else -100.0 / (dec - 1.0)
    if abs(american) > MAX_AMERICAN:
        raise OddsError(f"decimal odds {dec} are outside the supported range")
    return round(american)


def american_to_decimal(american: int) -> float:
    """-110 -> 1.909..., +150 -> 2.5."""
    if american >= 100:
        return 1.0 + american / 100.0
    return 1.0 + 100.0 / -american


def probability_to_american(p: float) -> int:
    """Implied probability 0.5238 -> -110, 0.4 -> +150. Raises OddsError outside (0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
        raise OddsError("probability must be a finite number")
    if not 0.0 < p < 1.0:
        raise OddsError("probability must be between 0 and 1 (exclusive)")
    return decimal_to_american(1.0 / p)


def american_to_probability(american: int) -> float:
    return 1.0 / american_to_decimal(american)


def to_american(value: float, odds_format: str) -> int:
    """Convert an incoming price in `odds_format` (american|decimal|probability) to American."""
    if odds_format == "american":
        return validate_american(value)
    if odds_format == "decimal":
        return decimal_to_american(value)
    if odds_format == "probability":
        return probability_to_american(value)
    raise OddsError(f"unknown odds_format {odds_format!r}: use american, decimal or probability")


ODDS_FORMATS = ("american", "decimal", "probability")


def format_price(american: int, odds_format: str) -> float | int:
    """A price as a client asked for it: American int, decimal rounded to 2 places (as The Odds
    API sends it) or implied probability rounded to 4."""
    if odds_format == "american":
        return american
    if odds_format == "probability":
        return round(american_to_probability(american), 4)
    return round(american_to_decimal(american), 2)

"""Price arithmetic: the cents line, direction, and format conversions (CONTRACT.md 0, 5)."""

from __future__ import annotations

import math

import pytest

from gateway.core.odds import (
    MAX_AMERICAN,
    OddsError,
    american_to_decimal,
    american_to_probability,
    cents_delta,
    decimal_to_american,
    direction,
    format_price,
    from_cents,
    probability_to_american,
    to_american,
    to_cents,
    validate_american,
)


@pytest.mark.parametrize(
    ("american", "cents"),
    [(-110, -10), (-100, 0), (100, 0), (150, 50), (-250, -150), (101, 1), (-101, -1)],
)
def test_to_cents(american: int, cents: int) -> None:
    assert to_cents(american) == cents


@pytest.mark.parametrize(("cents", "american"), [(0, 100), (-10, -110), (50, 150), (1, 101), (-1, -101)])
def test_from_cents_reports_even_money_as_plus_100(cents: int, american: int) -> None:
    assert from_cents(cents) == american


@pytest.mark.parametrize("american", [-10000, -250, -110, -101, 100, 101, 150, 10000])
def test_cents_round_trip(american: int) -> None:
    assert from_cents(to_cents(american)) == american
    assert from_cents(to_cents(-100)) == 100


@pytest.mark.parametrize(
    ("prev", "new", "delta", "dir_"),
    [
        (-110, -120, -10, "toward_favorite"),  # contract example
        (-105, 105, 10, "toward_dog"),  # across even money: 10 cents, not 210
        (105, -105, -10, "toward_favorite"),
        (100, -100, 0, None),  # the same price
        (-100, 100, 0, None),
        (150, 130, -20, "toward_favorite"),  # contract example
        (100, 110, 10, "toward_dog"),
        (-120, -110, 10, "toward_dog"),
        (-110, -110, 0, None),
        (-150, 150, 100, "toward_dog"),
    ],
)
def test_cents_delta_and_direction(prev: int, new: int, delta: int, dir_: str | None) -> None:
    assert cents_delta(prev, new) == delta
    assert direction(prev, new) == dir_


@pytest.mark.parametrize(("prev", "new"), [(-110, -120), (150, 130), (105, -105), (200, 100)])
def test_toward_favorite_means_implied_probability_rose(prev: int, new: int) -> None:
    assert direction(prev, new) == "toward_favorite"
    assert american_to_probability(new) > american_to_probability(prev)


@pytest.mark.parametrize(
    ("dec", "american"),
    [(1.91, -110), (2.5, 150), (2.0, 100), (1.5, -200), (3.0, 200), (1.8, -125), (1.952, -105), (11.0, 1000)],
)
def test_decimal_to_american(dec: float, american: int) -> None:
    assert decimal_to_american(dec) == american


@pytest.mark.parametrize(
    ("p", "american"),
    [(0.5238, -110), (0.4, 150), (0.5, 100), (0.6667, -200), (0.25, 300), (0.9, -900)],
)
def test_probability_to_american(p: float, american: int) -> None:
    assert probability_to_american(p) == american


@pytest.mark.parametrize(
    ("american", "dec"), [(-110, 1.9090909), (150, 2.5), (100, 2.0), (-100, 2.0), (-200, 1.5)]
)
def test_american_to_decimal(american: int, dec: float) -> None:
    assert math.isclose(american_to_decimal(american), dec, rel_tol=1e-6)


def test_american_to_probability() -> None:
    assert math.isclose(american_to_probability(-110), 0.5238095, rel_tol=1e-6)
    assert math.isclose(american_to_probability(150), 0.4)
    assert american_to_probability(100) == american_to_probability(-100) == 0.5


@pytest.mark.parametrize(
    "bad",
    [1.0, 0.5, 0.0, -2.0, math.inf, -math.inf, math.nan, True, "1.91", None, 1e308, 1.0 + 1e-12],
)
def test_decimal_edge_cases_raise_odds_error(bad: object) -> None:
    with pytest.raises(OddsError):
        decimal_to_american(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf, False, "0.5", 1e-300])
def test_probability_edge_cases_raise_odds_error(bad: object) -> None:
    with pytest.raises(OddsError):
        probability_to_american(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [0, 50, -99, 99, -110.5, math.nan, math.inf, True, "110", None, MAX_AMERICAN + 1, 1e300]
)
def test_validate_american_rejects(bad: object) -> None:
    with pytest.raises(OddsError):
        validate_american(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "out"), [(-110, -110), (100, 100), (-100, -100), (150.0, 150), (-MAX_AMERICAN, -MAX_AMERICAN)]
)
def test_validate_american_accepts(value: float, out: int) -> None:
    result = validate_american(value)
    assert result == out
    assert type(result) is int


def test_odds_error_is_a_value_error() -> None:
    assert issubclass(OddsError, ValueError)


@pytest.mark.parametrize(
    ("value", "fmt", "american"),
    [(-110, "american", -110), (1.91, "decimal", -110), (2.5, "decimal", 150), (0.5238, "probability", -110)],
)
def test_to_american(value: float, fmt: str, american: int) -> None:
    assert to_american(value, fmt) == american


@pytest.mark.parametrize(("value", "fmt"), [(-110, "fractional"), (-110, ""), (50, "american"), (0.9, "decimal")])
def test_to_american_rejects(value: float, fmt: str) -> None:
    with pytest.raises(OddsError):
        to_american(value, fmt)


@pytest.mark.parametrize(
    ("american", "fmt", "out"),
    [(-110, "american", -110), (-110, "decimal", 1.91), (150, "decimal", 2.5), (100, "decimal", 2.0)],
)
def test_format_price(american: int, fmt: str, out: float) -> None:
    assert format_price(american, fmt) == out

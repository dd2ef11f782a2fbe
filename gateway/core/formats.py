"""Odds formats on streams: a frame's prices as American (stored, default), decimal or probability.

Pure. Only prices change: OddsRow prices, a drop's prev/new (and prior/new price), a steam's
moves. Distances stay on the cents line (`delta`, `delta_cents`, thresholds), so filters and
thresholds mean the same in every format. Decimal has 2 places as The Odds API sends it,
probability 4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .odds import ODDS_FORMATS, format_price

AMERICAN = "american"
ROW_PRICES = ("home_ml", "away_ml", "draw_ml", "home_spread_price", "away_spread_price", "over_price", "under_price")
DROP_PRICES = ("prev", "new", "prior_price", "new_price")
MOVE_PRICES = ("prev", "new")

__all__ = ["AMERICAN", "ODDS_FORMATS", "convert_payload", "convert_row"]


def _conv(d: dict[str, Any], names: tuple[str, ...], fmt: str) -> None:
    for n in names:
        v = d.get(n)
        if type(v) is int:
            d[n] = format_price(v, fmt)


def convert_row(row: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    out = dict(row)
    _conv(out, ROW_PRICES, fmt)
    return out


def convert_payload(payload: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """A copy of a frame's payload with its prices in `fmt` (the original is not changed)."""
    out = dict(payload)
    kind = out.get("type")
    if kind in ("odds_update", "initial_state") and isinstance(out.get("data"), list):
        out["data"] = [convert_row(r, fmt) if isinstance(r, Mapping) and "kind" in r else r for r in out["data"]]
    elif kind == "odds_drop":
        _conv(out, DROP_PRICES, fmt)
    elif kind == "steam" and isinstance(out.get("moves"), list):
        moves = []
        for m in out["moves"]:
            m = dict(m)
            _conv(m, MOVE_PRICES, fmt)
            moves.append(m)
        out["moves"] = moves
    return out

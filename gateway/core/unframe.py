"""Stream frames back into ingest rows: what `gateway record` writes from a gateway's streams.

An `odds_update` frame carries whole OddsRows (every outcome of an event, book and kind) and
the markets that changed; each changed market's outcomes become flat quotes (CONTRACT.md 7),
stamped with the row's `last_update`. A `pbp_event` frame is the PBP row plus `type` and `id`.
Pure. What a row cannot say is lost: a quote that did not change the row (same price and
point), and distinct over/under points of one total or prop line (a row has one `total`).
Market state (issue 15) comes back per market from the row's `suspended_markets` (`closed`
when the whole row is, else `suspended`); an outcome-level state is recorded for its market.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GAME_MARKETS = ("h2h", "spreads", "totals")

# game row: market -> (outcome, price field, point field or None)
_GAME_CELLS: dict[str, tuple[tuple[str, str, str | None], ...]] = {
    "h2h": (("home", "home_ml", None), ("away", "away_ml", None), ("draw", "draw_ml", None)),
    "spreads": (("home", "home_spread_price", "home_spread"), ("away", "away_spread_price", "away_spread")),
    "totals": (("over", "over_price", "total"), ("under", "under_price", "total")),
}


def odds_row_quotes(row: Mapping[str, Any], markets: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The flat quotes of one OddsRow, for `markets` (None: every market the row holds)."""
    base = {k: row.get(k) for k in ("sport_key", "event_id", "home_team", "away_team", "commence_time",
                                    "bookmaker")}
    base["odds_format"] = "american"
    base["observed_at_ms"] = row.get("last_update")
    shut = set(row.get("suspended_markets") or ())
    state = "closed" if row.get("status") == "closed" else "suspended"

    def stated(quote: dict[str, Any]) -> dict[str, Any]:
        if quote["market_key"] in shut:
            quote["status"] = state
        return quote

    out: list[dict[str, Any]] = []
    if row.get("kind") == "prop":
        market = row.get("market_key")
        if markets is not None and market not in set(markets):
            return out
        for outcome, price in (("over", row.get("over_price")), ("under", row.get("under_price"))):
            if price is not None:
                out.append(stated({**base, "market_key": market, "outcome": outcome, "price": price,
                                   "point": row.get("line"), "player": row.get("player")}))
        return out
    wanted = GAME_MARKETS if markets is None else [m for m in GAME_MARKETS if m in set(markets)]
    for market in wanted:
        for outcome, price_field, point_field in _GAME_CELLS[market]:
            price = row.get(price_field)
            if price is not None:
                out.append(stated({**base, "market_key": market, "outcome": outcome, "price": price,
                                   "point": row.get(point_field) if point_field else None, "player": None}))
    return out


def odds_frame_quotes(frame: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat quotes of an `odds_update` (the changed markets) or an odds `initial_state` (all)."""
    rows = frame.get("data")
    if not isinstance(rows, list):
        return []
    markets = frame.get("markets") if frame.get("type") == "odds_update" else None
    if markets is not None and not isinstance(markets, list):
        markets = None
    return [q for row in rows if isinstance(row, dict) for q in odds_row_quotes(row, markets)]


def pbp_frame_row(frame: Mapping[str, Any]) -> dict[str, Any]:
    """A `pbp_event` frame's PBP row (the frame without its `type` and `id`)."""
    return {k: v for k, v in frame.items() if k not in ("type", "id")}

"""The board: the current price of every outcome, grouped into the contract's OddsRows.

Pure. The writer applies each quote here (one owner), and the board answers snapshots
(`initial_state`, REST polling) from memory and builds the row for every `odds_update`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .model import GAME_MARKETS, OPEN, Quote, kind_of, market_label
from .time import iso_from_ms

# (event_id, bookmaker, kind, player, market_key); player/market_key are "" for game rows
RowKey = tuple[str, str, str, str, str]


@dataclass(slots=True)
class EventInfo:
    id: str
    sport_key: str
    home_team: str
    away_team: str
    commence_time_ms: int
    status: str = "scheduled"  # scheduled | in_progress | final


def row_key(q: Quote) -> RowKey:
    if q.market_key in ("h2h", "spreads", "totals"):
        return (q.event_id, q.bookmaker, "game", "", "")
    return (q.event_id, q.bookmaker, "prop", q.player or "", q.market_key)


class Board:
    __slots__ = ("_rows", "events")

    def __init__(self) -> None:
        self.events: dict[str, EventInfo] = {}
        # row -> {(market_key, outcome): quote}
        self._rows: dict[RowKey, dict[tuple[str, str], Quote]] = {}

    def apply(self, q: Quote) -> RowKey | None:
        """Record `q`; return its row key if the row changed (price or point), else None."""
        ev = self.events.get(q.event_id)
        if ev is None:
            self.events[q.event_id] = EventInfo(
                q.event_id, q.sport_key, q.home_team, q.away_team, q.commence_time_ms
            )
        key = row_key(q)
        cells = self._rows.setdefault(key, {})
        slot = (q.market_key, q.outcome)
        old = cells.get(slot)
        cells[slot] = q
        if old is not None and old.price == q.price and old.point == q.point and old.status == q.status:
            return None
        return key

    def cell(self, q: Quote) -> Quote | None:
        """The board's current quote for `q`'s cell (book, market, outcome, player), if any."""
        cells = self._rows.get(row_key(q))
        return None if cells is None else cells.get((q.market_key, q.outcome))

    def row(self, key: RowKey) -> dict[str, object]:
        """The contract's OddsRow for one row key."""
        cells = self._rows[key]
        event_id, bookmaker, kind, player, market_key = key
        ev = self.events[event_id]
        last = max(q.observed_at_ms for q in cells.values())
        row: dict[str, object] = {
            "kind": kind,
            "sport_key": ev.sport_key,
            "event_id": event_id,
            "bookmaker": bookmaker,
            "home_team": ev.home_team,
            "away_team": ev.away_team,
            "commence_time": iso_from_ms(ev.commence_time_ms),
            "last_update": last,
        }

        def price(market: str, outcome: str) -> int | None:
            q = cells.get((market, outcome))
            return q.price if q else None

        def point(market: str, outcome: str) -> float | None:
            q = cells.get((market, outcome))
            return q.point if q else None

        if kind == "game":
            row.update(
                home_ml=price("h2h", "home"),
                away_ml=price("h2h", "away"),
                draw_ml=price("h2h", "draw"),
                home_spread=point("spreads", "home"),
                away_spread=point("spreads", "away"),
                home_spread_price=price("spreads", "home"),
                away_spread_price=price("spreads", "away"),
                total=point("totals", "over") if ("totals", "over") in cells else point("totals", "under"),
                over_price=price("totals", "over"),
                under_price=price("totals", "under"),
            )
        else:
            row.update(
                player=player,
                market_key=market_key,
                market=market_label(market_key),
                line=point(market_key, "over")
                if (market_key, "over") in cells
                else point(market_key, "under"),
                over_price=price(market_key, "over"),
                under_price=price(market_key, "under"),
            )
        status, suspended = row_status(cells)
        row["available"] = status != "closed" and any(q.status == OPEN for q in cells.values())
        row["action"] = "upsert"
        row["status"] = status
        row["suspended_markets"] = suspended
        return row

    def market_cells(self, q: Quote) -> list[Quote]:
        """Every outcome the board holds of `q`'s market at `q`'s book (and player)."""
        cells = self._rows.get(row_key(q), {})
        return [c for (m, _), c in cells.items() if m == q.market_key]

    def replace_with(self, other: Board) -> None:
        """Take `other`'s contents (the board is shared by reference, so it is changed in place)."""
        self.events, self._rows = other.events, other._rows

    def quotes(self, key: RowKey) -> Iterable[Quote]:
        return self._rows[key].values()

    def cells(self, key: RowKey) -> Mapping[tuple[str, str], Quote]:
        return self._rows[key]

    def row_keys(self) -> Iterator[RowKey]:
        return iter(self._rows)

    def last_update(self, key: RowKey) -> int:
        return max(q.observed_at_ms for q in self._rows[key].values())

    def remove_event(self, event_id: str) -> list[RowKey]:
        gone = [k for k in self._rows if k[0] == event_id]
        for k in gone:
            del self._rows[k]
        self.events.pop(event_id, None)
        return gone

    def __len__(self) -> int:
        return len(self._rows)


def row_status(cells: Mapping[tuple[str, str], Quote]) -> tuple[str, list[str]]:
    """(status, suspended_markets) of a row: `open` when every price in it is open, `closed`
    when every one is closed, else `suspended`, with the markets (game rows in h2h, spreads,
    totals order) that have a price not open."""
    shut = {m for (m, _), q in cells.items() if q.status != OPEN}
    if not shut:
        return OPEN, []
    status = "closed" if all(q.status == "closed" for q in cells.values()) else "suspended"
    return status, [m for m in GAME_MARKETS if m in shut] or sorted(shut)  # a row: game markets, or one prop


__all__ = ["Board", "EventInfo", "RowKey", "kind_of", "market_label", "row_key"]

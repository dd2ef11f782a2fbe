"""The line history in SQLite (issue 15.2): writing changes, reading one event, pruning.

Tables (schema.sql): `history_events` (an integer code per event), `history_series` (one
row per (event, book, market, outcome, player, point), numbered within its event) and
`price_history` (event code, time, series number, price code), a WITHOUT ROWID table
clustered by (event, time): one event's history is one range of it, and the rows of one
batch go to the end of each event's range. Kept `[database] history_days` (14), apart from
the stream log's resume window; pruned by age in chunks beside the writer.

`HistorySeries` is the writer connection's map of series numbers (loaded at start): what a
batch adds stays pending until its transaction commits, like the log's names. It also
knows each series' latest change written since start (a change at or before it is written
1 ms after it: none replaces another) and each event's stored last_ms (rewritten once a
minute behind, not with every change).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from .core.history import Series

_SeriesKey = tuple[str, str, str, str, str, float | None]  # event_id, book, market, outcome, player, point
HistoryRow = tuple[str, str, str, str, str, float | None, int, int]
PRUNE_CHUNK = 50_000  # rows per delete transaction
# an event's last_ms (what pruning goes by) is rewritten once it is this far behind, not on
# every change: one UPDATE and one page less in most commits, for pruning up to a minute early
LAST_MS_GRAIN = 60_000


class HistorySeries:
    def __init__(self) -> None:
        self._events: dict[str, list[int]] = {}  # event_id -> [code, next series number]
        self._last_ms: dict[int, int] = {}  # event code -> its last_ms as stored
        self._pending_last_ms: dict[int, int] = {}
        # (event code, number) -> time of the series' latest change written since start: a
        # change at or before it is written 1 ms after it (two changes in one millisecond
        # are both kept, in the order they were applied, the last one the board's price)
        self._latest: dict[tuple[int, int], int] = {}
        self._pending_latest: dict[tuple[int, int], int] = {}
        self._series: dict[_SeriesKey, tuple[int, int]] = {}  # -> (event code, number)
        self._pending_events: dict[str, list[int]] = {}
        self._pending_series: dict[_SeriesKey, tuple[int, int]] = {}

    def load(self, conn: sqlite3.Connection) -> None:
        self._events = {}
        self._last_ms = {}
        for c, e, last in conn.execute("SELECT code, event_id, last_ms FROM history_events"):
            self._events[e] = [c, 0]
            self._last_ms[c] = last
        by_code = {v[0]: k for k, v in self._events.items()}
        self._series = {}
        for code, n, book, market, outcome, player, point in conn.execute(
                "SELECT event, n, bookmaker, market_key, outcome, player, point FROM history_series"):
            event_id = by_code.get(code)
            if event_id is None:
                continue
            self._series[(event_id, book, market, outcome, player, point)] = (code, n)
            entry = self._events[event_id]
            entry[1] = max(entry[1], n + 1)

    def _event(self, conn: sqlite3.Connection, event_id: str, ms: int) -> list[int]:
        entry = self._pending_events.get(event_id) or self._events.get(event_id)
        if entry is None:
            cur = conn.execute("INSERT INTO history_events (event_id, last_ms) VALUES (?, ?)", (event_id, ms))
            assert cur.lastrowid is not None
            entry = [cur.lastrowid, 0]
            self._pending_last_ms[entry[0]] = ms
        elif event_id not in self._pending_events:
            entry = list(entry)
        self._pending_events[event_id] = entry
        return entry

    def series(self, conn: sqlite3.Connection, key: _SeriesKey, ms: int) -> tuple[int, int]:
        found = self._pending_series.get(key) or self._series.get(key)
        if found is not None:
            return found
        entry = self._event(conn, key[0], ms)
        found = (entry[0], entry[1])
        entry[1] += 1
        conn.execute("INSERT INTO history_series (event, n, bookmaker, market_key, outcome, player, point) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (*found, *key[1:]))
        self._pending_series[key] = found
        return found

    def change_ms(self, series: tuple[int, int], ms: int) -> int:
        """When a change of `series` observed at `ms` is written: after the series' latest."""
        latest = self._pending_latest.get(series) or self._latest.get(series)
        if latest is not None and ms <= latest:
            ms = latest + 1
        self._pending_latest[series] = ms
        return ms

    def stale_last_ms(self, last: dict[int, int]) -> list[tuple[int, int]]:
        """(ms, code) of the events whose stored last_ms is LAST_MS_GRAIN behind `last`."""
        out = []
        for code, ms in last.items():
            stored = self._pending_last_ms.get(code) or self._last_ms.get(code, 0)
            if ms >= stored + LAST_MS_GRAIN:
                out.append((ms, code))
                self._pending_last_ms[code] = ms
        return out

    def commit(self) -> None:
        self._events.update(self._pending_events)
        self._series.update(self._pending_series)
        self._last_ms.update(self._pending_last_ms)
        self._latest.update(self._pending_latest)
        self.rollback()

    def rollback(self) -> None:
        self._pending_events.clear()
        self._pending_series.clear()
        self._pending_last_ms.clear()
        self._pending_latest.clear()

    def forget(self, event_ids: Sequence[str]) -> None:
        """Pruned events (called in the write slot)."""
        gone = set(event_ids)
        codes = set()
        for e in gone:
            entry = self._events.pop(e, None)
            if entry is not None:
                self._last_ms.pop(entry[0], None)
                codes.add(entry[0])
        self._series = {k: v for k, v in self._series.items() if k[0] not in gone}
        self._latest = {k: v for k, v in self._latest.items() if k[0] not in codes}


def write(conn: sqlite3.Connection, names: HistorySeries, rows: Sequence[HistoryRow]) -> None:
    """Store a batch's price changes (inside the writer's transaction)."""
    out = []
    last: dict[int, int] = {}
    for event_id, book, market, outcome, player, point, ms, price in rows:
        code, n = names.series(conn, (event_id, book, market, outcome, player, point), ms)
        ms = names.change_ms((code, n), ms)
        out.append((code, ms, n, price))
        last[code] = max(last.get(code, 0), ms)
    conn.executemany("INSERT OR REPLACE INTO price_history (event, ms, n, price) VALUES (?, ?, ?, ?)", out)
    stale = names.stale_last_ms(last)
    if stale:
        conn.executemany("UPDATE history_events SET last_ms = MAX(last_ms, ?) WHERE code = ?", stale)


@dataclass(frozen=True, slots=True)
class EventHistory:
    series: list[Series]
    oldest_ms: int | None  # the oldest change kept for the event


def read_event(conn: sqlite3.Connection, event_id: str) -> EventHistory | None:
    """Every series of one event with its whole stored history (None: no history for it)."""
    row = conn.execute("SELECT code FROM history_events WHERE event_id = ?", (event_id,)).fetchone()
    if row is None:
        return None
    code = row[0]
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        meta = {n: (book, market, outcome, player or None, point) for n, book, market, outcome, player, point in
                conn.execute("SELECT n, bookmaker, market_key, outcome, player, point FROM history_series "
                             "WHERE event = ?", (code,))}
        changes: dict[int, list[tuple[int, int]]] = {n: [] for n in meta}
        for ms, n, price in conn.execute("SELECT ms, n, price FROM price_history WHERE event = ? ORDER BY ms",
                                         (code,)):
            changes.setdefault(n, []).append((ms, price))
    finally:
        if own:
            conn.execute("COMMIT")
    series = [Series(*meta[n], changes=c) for n, c in changes.items() if c and n in meta]
    series.sort(key=lambda s: (s.bookmaker, s.market_key, s.player or "", s.outcome,
                               -1e18 if s.point is None else s.point))
    oldest = min((s.changes[0][0] for s in series), default=None)
    return EventHistory(series, oldest)


def prune(conn: sqlite3.Connection, before_ms: int) -> tuple[int, list[str]]:
    """Delete changes older than `before_ms` (one chunk); events with nothing newer go whole.
    Returns (rows deleted, event ids dropped)."""
    gone = [(c, e) for c, e in conn.execute(
        "SELECT code, event_id FROM history_events WHERE last_ms < ? LIMIT 200", (before_ms,))]
    deleted = 0
    for code, _ in gone:
        deleted += conn.execute("DELETE FROM price_history WHERE event = ?", (code,)).rowcount
        conn.execute("DELETE FROM history_series WHERE event = ?", (code,))
        conn.execute("DELETE FROM history_events WHERE code = ?", (code,))
    if not gone:  # long-lived events: their oldest changes only
        for (code,) in conn.execute("SELECT code FROM history_events").fetchall():
            deleted += conn.execute("DELETE FROM price_history WHERE event = ? AND ms < ?",
                                    (code, before_ms)).rowcount
            if deleted >= PRUNE_CHUNK:
                break
    return deleted, [e for _, e in gone]

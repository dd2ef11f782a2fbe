"""What the writer sends to Redis, built in memory: the sections of one PUBLISH call (entries,
names, board rows, catalog) from committed batches or from a snapshot of the store, and the
store reads a catch-up needs (gateway/cluster/mirror.py sends them)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ..store import WriteBatch, max_seq, pruned_through
from .records import entry_id, event_value, key_value, live_value, pack_entry, quote_field, quote_value


@dataclass
class Snapshot:
    """The store at one id, read in one transaction: what the mirror copies when it catches up."""

    last: int
    floor: int
    quotes: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    live: list[tuple[Any, ...]] = field(default_factory=list)
    sports: list[tuple[Any, ...]] = field(default_factory=list)
    books: list[tuple[Any, ...]] = field(default_factory=list)
    markets: list[str] = field(default_factory=list)
    names: list[tuple[int, str]] = field(default_factory=list)
    keys: dict[bytes, str] = field(default_factory=dict)


KEYS_SQL = "SELECT key_hash, id, name, tier, scopes, prefix, revoked_ms IS NOT NULL FROM api_keys"


def key_rows(conn: sqlite3.Connection) -> dict[bytes, str]:
    """Every API key as the mirror keeps it: hash -> value."""
    return {r[0].encode(): key_value(r[1:]) for r in conn.execute(KEYS_SQL)}


def read_snapshot(conn: sqlite3.Connection) -> Snapshot:
    conn.execute("BEGIN")
    try:
        return Snapshot(
            last=max_seq(conn), floor=pruned_through(conn),
            quotes=conn.execute("SELECT * FROM quotes").fetchall(),
            events=conn.execute("SELECT * FROM events").fetchall(),
            live=conn.execute("SELECT * FROM live_state").fetchall(),
            sports=conn.execute("SELECT key, grp, title, description, has_outrights, active FROM sports").fetchall(),
            books=conn.execute("SELECT key, title, coverage FROM books").fetchall(),
            markets=[r[0] for r in conn.execute("SELECT key FROM markets")],
            names=conn.execute("SELECT code, value FROM log_names").fetchall(), keys=key_rows(conn))
    finally:
        conn.execute("COMMIT")


def log_page(conn: sqlite3.Connection, after: int, through: int, limit: int) -> list[tuple[int, int, int, bytes]]:
    return conn.execute("SELECT seq, topic, ms, body FROM stream_log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                        (after, through, limit)).fetchall()


def sport_value(r: tuple[Any, ...]) -> str:
    return json.dumps(list(r[1:]), separators=(",", ":"))  # group, title, description, outrights, active


class Sections:
    """The PUBLISH script's arguments after its first three, built section by section."""

    def __init__(self) -> None:
        self.entries: list[bytes | str] = []
        self.hashes: list[list[bytes | str]] = [[] for _ in range(6)]  # names quotes events live sports books
        self.markets: list[str] = []

    def add_rows(self, rows: list[tuple[int, int, int, bytes]]) -> None:
        for seq, topic, ms, body in rows:
            self.entries += (entry_id(seq), pack_entry(topic, ms, body))

    def add_names(self, names: list[tuple[int, str]]) -> None:
        for code, value in names:
            self.hashes[0] += (str(code), value)

    def add_board(self, quotes: list[Any], events: list[Any], live: list[Any]) -> None:
        for q in quotes:
            self.hashes[1] += (quote_field(q), quote_value(q))
        for e in events:
            self.hashes[2] += (e[0], event_value(e))
        for r in live:
            self.hashes[3] += (r[0], live_value(r))

    def add_catalog(self, sports: list[Any], books: list[Any], markets: list[str]) -> None:
        for s in sports:
            self.hashes[4] += (s[0], sport_value(s))
        for b in books:
            self.hashes[5] += (b[0], json.dumps([b[1], b[2]]))
        self.markets += markets

    def args(self) -> list[bytes | str | int]:
        out: list[bytes | str | int] = [len(self.entries) // 2, *self.entries]
        for h in self.hashes:
            out += [len(h) // 2, *h]
        return [*out, len(self.markets), *self.markets]

    def empty(self) -> bool:
        return not self.entries and not any(self.hashes) and not self.markets


def batch_sections(batches: list[WriteBatch], universe: Any) -> Sections:
    s = Sections()
    for b in batches:
        s.add_rows(b.stored)
        s.add_names(b.new_names)
        s.add_board(b.quotes, b.events, b.live_state)
        if b.sports or b.books or b.markets:
            s.add_catalog([(k, "Other", k, k, 0, 1) if k not in universe.sports else
                           (k, universe.sports[k].group, universe.sports[k].title, universe.sports[k].description,
                            int(universe.sports[k].has_outrights), 1) for k in b.sports], list(b.books),
                          sorted(b.markets))
    return s

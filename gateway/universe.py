"""What exists: sports, books and markets known to this gateway, for validation and REST.

Seeded from the shipped catalog and config at startup, loaded from the store, and grown
by the writer as ingest brings new names (a new book joins as `per_market`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from .config import Config
from .core.catalog import PROP_MARKETS, SPORTS, SportInfo, book_title
from .core.filters import Catalog
from .core.model import GAME_MARKETS


@dataclass
class Universe:
    sports: dict[str, SportInfo] = field(default_factory=dict)
    active_sports: set[str] = field(default_factory=set)
    coverage: dict[str, str] = field(default_factory=dict)
    markets: set[str] = field(default_factory=set)

    @classmethod
    def from_config(cls, config: Config) -> Universe:
        u = cls(sports={s.key: s for s in SPORTS}, coverage=config.books.coverage())
        u.markets.update(GAME_MARKETS, PROP_MARKETS)
        return u

    def load(self, conn: sqlite3.Connection) -> None:
        for key, grp, title, desc, outrights, active in conn.execute("SELECT * FROM sports"):
            if key not in self.sports:
                self.sports[key] = SportInfo(key, grp, title, desc, bool(outrights))
            if active:
                self.active_sports.add(key)
        for key, _title, coverage in conn.execute("SELECT * FROM books"):
            self.coverage.setdefault(key, coverage)
        self.markets.update(r[0] for r in conn.execute("SELECT key FROM markets"))

    def seed(self, conn: sqlite3.Connection) -> None:
        """Write the shipped catalog and configured books into the store (idempotent)."""
        conn.executemany(
            "INSERT OR IGNORE INTO sports (key, grp, title, description, has_outrights, active) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            [(s.key, s.group, s.title, s.description, int(s.has_outrights)) for s in self.sports.values()],
        )
        conn.executemany(
            "INSERT INTO books (key, title, coverage) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET coverage = excluded.coverage",
            [(b, book_title(b), c) for b, c in self.coverage.items()],
        )

    def activate_sport(self, key: str) -> None:
        self.active_sports.add(key)
        if key not in self.sports:
            self.sports[key] = SportInfo(key, "Other", key, key, False)

    def add_book(self, key: str) -> str:
        return self.coverage.setdefault(key, "per_market")

    def book_title(self, key: str) -> str:
        return book_title(key)

    def catalog(self) -> Catalog:
        """A live view for filter validation (the sets keep growing underneath)."""
        return Catalog(sports=self.sports, bookmakers=self.coverage, markets=self.markets)

"""The store: the only module that talks to SQLite.

One writer connection, used only by the writer task through `trio.to_thread` (batched
transactions), and a small pool of reader connections; WAL lets reads run during writes.
Checkpoints are ours (`checkpoint`), not SQLite's automatic one inside COMMIT: at 1000
changes/s that one stalled a commit (and so every frame behind it) for ~15 ms every 0.4 s.
Schema comes from schema.sql; a store written by another schema version is refused.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from .resources import schema_text

SCHEMA_VERSION = 1
T = TypeVar("T")


class StoreError(RuntimeError):
    """The database cannot be used (wrong schema version, unreadable file)."""


@dataclass(slots=True)
class LogRow:
    seq: int
    stream: str
    sport_key: str
    event_id: str | None
    live: bool
    created_ms: int
    payload: str


@dataclass(slots=True)
class WriteBatch:
    """Everything one writer transaction stores. Rows are tuples in column order."""

    events: list[tuple[str, str, str, str, int, int]] = field(default_factory=list)
    quotes: list[tuple[str, str, str, str, str, float | None, int, int]] = field(default_factory=list)
    live_state: list[tuple[Any, ...]] = field(default_factory=list)
    log: list[LogRow] = field(default_factory=list)
    sports: set[str] = field(default_factory=set)
    books: list[tuple[str, str, str]] = field(default_factory=list)
    markets: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.events) + len(self.quotes) + len(self.live_state) + len(self.log)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def apply_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise StoreError(
            f"database schema version {version} does not match this gateway ({SCHEMA_VERSION}); "
            "use a new --db path or migrate the file"
        )
    if version == SCHEMA_VERSION and not missing_schema_objects(conn):
        return  # nothing to write: a CLI beside a running gateway must not queue behind its writer
    conn.executescript(schema_text())


def missing_schema_objects(conn: sqlite3.Connection) -> set[str]:
    """Tables and indexes of schema.sql the file lacks (added since it was created)."""
    wanted = set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", schema_text()))
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    return wanted - have


def _write(conn: sqlite3.Connection, b: WriteBatch) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if b.sports:
            conn.executemany(
                "INSERT INTO sports (key, grp, title, description, active) VALUES (?, 'Other', ?, ?, 1) "
                "ON CONFLICT(key) DO UPDATE SET active = 1 WHERE active = 0",
                [(s, s, s) for s in b.sports],
            )
        if b.books:
            conn.executemany("INSERT OR IGNORE INTO books (key, title, coverage) VALUES (?, ?, ?)", b.books)
        if b.markets:
            conn.executemany("INSERT OR IGNORE INTO markets (key) VALUES (?)", [(m,) for m in b.markets])
        if b.events:
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "home_team = excluded.home_team, away_team = excluded.away_team, "
                "commence_time_ms = excluded.commence_time_ms, updated_ms = excluded.updated_ms",
                b.events,
            )
        if b.quotes:
            conn.executemany("INSERT OR REPLACE INTO quotes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", b.quotes)
        if b.live_state:
            conn.executemany("INSERT OR REPLACE INTO live_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             b.live_state)
        if b.log:
            conn.executemany(
                "INSERT INTO stream_log VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.seq, r.stream, r.sport_key, r.event_id, int(r.live), r.created_ms, r.payload) for r in b.log],
            )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends some failed ones itself (a full
    disk, an I/O error), and a ROLLBACK then would raise over the real error."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


class Store:
    """Async facade: `write` for the single writer task, `read` for everybody else."""

    def __init__(self, path: str, *, readers: int = 4) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = connect(path)
            apply_schema(self._writer)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        self.path = path
        self._checkpointer: sqlite3.Connection | None = None
        if path != ":memory:":
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = connect(path)
        self._idle = [connect(path) for _ in range(readers)]
        self._read_slots = trio.CapacityLimiter(readers)
        self._write_slot = trio.CapacityLimiter(1)
        self.open = True

    def close(self) -> None:
        self.open = False
        for conn in [self._writer, *self._idle, *filter(None, [self._checkpointer])]:
            conn.close()

    async def checkpoint(self) -> int:
        """Copy the WAL into the database file without stalling commits: the long part runs
        on its own connection while the writer goes on; then a short catch-up on the writer
        connection (the frames committed meanwhile), after which the next transaction
        starts the WAL from its beginning, so it stops growing. Returns the pages copied."""
        if self._checkpointer is None:
            return 0
        copied = await trio.to_thread.run_sync(_checkpoint, self._checkpointer)
        return copied + await trio.to_thread.run_sync(_checkpoint, self._writer, limiter=self._write_slot)

    # -- writing (the writer task only) ------------------------------------------------
    async def write(self, batch: WriteBatch) -> None:
        await trio.to_thread.run_sync(_write, self._writer, batch, limiter=self._write_slot)

    async def write_fn(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` inside one transaction on the writer connection."""
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            return result

        return await trio.to_thread.run_sync(run, self._writer, limiter=self._write_slot)

    def write_fn_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For the CLI and startup, before any task runs."""
        with self._writer:
            return fn(self._writer)

    def write_fn_own_connection(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write from outside the writer task while it runs: its own short-lived connection
        (SQLite serialises it against the writer through the file lock)."""
        conn = connect(self.path)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                return fn(conn)
        finally:
            conn.close()

    # -- reading -------------------------------------------------------------------------
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._read_slots:
            conn = self._idle.pop()
            try:
                return await trio.to_thread.run_sync(fn, conn)
            finally:
                self._idle.append(conn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self._writer)


# -- queries: plain functions of a connection, testable without trio ---------------------

def _checkpoint(conn: sqlite3.Connection) -> int:
    copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][2]  # (busy, log, copied)
    return int(copied) if copied > 0 else 0


def max_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'stream_log'").fetchone()
    return int(row[0]) if row else 0


def pruned_through(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
    return int(row[0]) if row else 0


def read_log(
    conn: sqlite3.Connection,
    after: int,
    streams: Sequence[str],
    sports: Iterable[str] | None,
    limit: int,
) -> list[LogRow]:
    """Frames after `after`, oldest first, of these streams and sports (None = every sport)."""
    marks = ",".join("?" * len(streams))
    sql = f"SELECT * FROM stream_log WHERE seq > ? AND stream IN ({marks})"
    args: list[Any] = [after, *streams]
    if sports is not None:
        sport_list = list(sports)
        sql += f" AND sport_key IN ({','.join('?' * len(sport_list))})"
        args += sport_list
    sql += " ORDER BY seq LIMIT ?"
    args.append(limit)
    return [LogRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in conn.execute(sql, args)]


def recent_log(conn: sqlite3.Connection, stream: str, sports: Iterable[str] | None, limit: int) -> list[LogRow]:
    sql = "SELECT * FROM stream_log WHERE stream = ?"
    args: list[Any] = [stream]
    if sports is not None:
        sport_list = list(sports)
        sql += f" AND sport_key IN ({','.join('?' * len(sport_list))})"
        args += sport_list
    sql += " ORDER BY seq DESC LIMIT ?"
    args.append(limit)
    return [LogRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in conn.execute(sql, args)]


def prune_log(conn: sqlite3.Connection, before_ms: int) -> int:
    """Delete log rows created before `before_ms`; remember the highest id deleted."""
    row = conn.execute("SELECT MAX(seq) FROM stream_log WHERE created_ms < ?", (before_ms,)).fetchone()
    if row[0] is None:
        return 0
    cur = conn.execute("DELETE FROM stream_log WHERE seq <= ?", (row[0],))
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('pruned_through', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), excluded.value)",
        (str(row[0]),),
    )
    return cur.rowcount

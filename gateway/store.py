"""The store: the only module that talks to SQLite.

One writer connection, used only by the writer task through `trio.to_thread` (batched
transactions), and a small pool of reader connections; WAL lets reads run during writes.
Checkpoints are ours (`checkpoint`), not SQLite's automatic one inside COMMIT: at 1000
changes/s that one stalled a commit (and so every frame behind it) for ~15 ms every 0.4 s.
Schema comes from schema.sql; a version-1 store is migrated at start (`apply_schema`), one
written by another version is refused.

The stream log keeps each frame as a compact body (gateway/core/logcodec.py) whose strings
and events are codes of `log_names`: the writer connection's `Names` hands out codes while a
batch is encoded, and readers decode with a per-connection cache of the codes they met.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from . import history_store
from .core import logcodec
from .history_store import HistorySeries
from .resources import schema_text

SCHEMA_VERSION = 3
T = TypeVar("T")
logger = logging.getLogger(__name__)
# a name's used_seq is refreshed once the log has moved this many ids past it: names cost one
# update per this many rows at most, and outlive their last row by as many ids before pruning
NAMES_SLACK = 65_536
ALL_STREAMS = frozenset(logcodec.STREAM_NO)
MAX_CACHED_NAMES = 100_000  # per reader connection
MAX_MERGED_TOPICS = 64  # more topics than this: one scan in id order that filters on topic
# A small batch commits in the event loop's thread (`Store.write`): a hop to a worker thread
# and back costs ~100-130 us of CPU here, more than such a commit. Never one that could wait:
# the busy timeout is 0 meanwhile (a lock held elsewhere sends it to the thread), and after an
# inline commit slower than INLINE_STALL_S every commit uses the thread for INLINE_BACKOFF_S.
INLINE_STALL_S = 0.005
INLINE_BACKOFF_S = 10.0
BUSY_TIMEOUT_MS = 30_000


class StoreError(RuntimeError):
    """The database cannot be used (wrong schema version, unreadable file)."""


@dataclass(slots=True)
class LogRow:
    """A resumable frame, as the writer stores it and as the log gives it back: `payload` is
    the frame's JSON text, `data` the same payload as a dict (None: parse `payload`)."""

    seq: int
    stream: str
    sport_key: str
    event_id: str | None
    live: bool
    created_ms: int
    payload: str
    data: dict[str, Any] | None = None


@dataclass(slots=True)
class WriteBatch:
    """Everything one writer transaction stores. Rows are tuples in column order."""

    events: list[tuple[str, str, str, str, int, int]] = field(default_factory=list)
    quotes: list[tuple[str, str, str, str, str, float | None, int, int, str]] = field(default_factory=list)
    # line history: (event_id, book, market, outcome, player or "", point, observed ms, price code)
    history: list[tuple[str, str, str, str, str, float | None, int, int]] = field(default_factory=list)
    live_state: list[tuple[Any, ...]] = field(default_factory=list)
    log: list[LogRow] = field(default_factory=list)
    sports: set[str] = field(default_factory=set)
    books: list[tuple[str, str, str]] = field(default_factory=list)
    markets: set[str] = field(default_factory=set)
    # filled by the commit: the log rows as stored (seq, topic, ms, body) and the names they
    # brought that the writer's memory did not hold (code, JSON value); the cluster's Redis
    # mirror sends these as they are (gateway/cluster/mirror.py)
    stored: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    new_names: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events) + len(self.quotes) + len(self.live_state) + len(self.log) + len(self.history)


class LogConnection(sqlite3.Connection):
    """A connection that remembers the log names it decoded (codes are never reused)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names: dict[int, Any] = {}


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30, factory=LogConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def apply_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, 1, 2, SCHEMA_VERSION):
        raise StoreError(
            f"database schema version {version} does not match this gateway ({SCHEMA_VERSION}); "
            "use a new --db path or migrate the file"
        )
    if version == 1:
        _migrate_v1(conn)
        _migrate_v2(conn)
    elif version == 2:
        _migrate_v2(conn)
    elif version == SCHEMA_VERSION and not missing_schema_objects(conn):
        return  # nothing to write: a CLI beside a running gateway must not queue behind its writer
    else:
        conn.executescript(schema_text())


def missing_schema_objects(conn: sqlite3.Connection) -> set[str]:
    """Tables and indexes of schema.sql the file lacks (added since it was created)."""
    wanted = set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", schema_text()))
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    return wanted - have


def _statements(script: str) -> list[str]:
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current)
            current = ""
    return out


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2 in one transaction. Version 1 kept every frame's JSON; its rows are not
    converted (a big file would take minutes): they are dropped, ids stay monotonic, and the
    old ids count as pruned, so a client resuming one gets the `reset` frame (README, Storage)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        top = max(max_seq(conn), conn.execute("SELECT COALESCE(MAX(seq), 0) FROM stream_log").fetchone()[0])
        rows = conn.execute("SELECT COUNT(*) FROM stream_log").fetchone()[0]
        conn.execute("DROP INDEX IF EXISTS stream_log_topic")
        conn.execute("DROP INDEX IF EXISTS stream_log_created")
        conn.execute("DROP TABLE stream_log")
        for statement in _statements(schema_text()):  # the version-2 tables, in this transaction
            conn.execute(statement)
        if top:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('stream_log', ?)", (top,))
            _set_pruned_through(conn, top)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.warning("database migrated to schema %d: %d stream-log rows of schema 1 dropped (ids up to %d "
                   "now get a reset on resume)", SCHEMA_VERSION, rows, top)
    pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count"))
    if free > pages // 2:  # give the space back once: what is left is small, so this is quick
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file shrinks when the WAL is copied back


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Schema 2 -> 3 (issue 15): quotes gain their market state, the line-history tables are
    created. One transaction; nothing is rewritten."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(quotes)")}
        if "status" not in columns:
            conn.execute("ALTER TABLE quotes ADD COLUMN status TEXT NOT NULL DEFAULT 'open'")
        for statement in _statements(schema_text()):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class Names:
    """The writer connection's side of `log_names`: value -> [code, used_seq]. What a batch
    adds or refreshes stays apart (`_pending`) until its transaction commits, so a rolled-back
    batch leaves memory as it leaves the file."""

    def __init__(self) -> None:
        self._known: dict[Hashable, list[int]] = {}
        self._pending: dict[Hashable, list[int]] = {}
        self._conn: sqlite3.Connection | None = None
        self.seq = 0  # the id of the row being encoded

    def load(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT code, value, used_seq FROM log_names")
        self._known = {_name_value(v): [c, u] for c, v, u in rows}

    def code(self, value: Hashable) -> int:
        """The code of `value` for the row `self.seq`; new names are inserted at once."""
        entry = self._pending.get(value)
        if entry is not None:
            if entry[1] < self.seq:
                entry[1] = self.seq
            return entry[0]
        entry = self._known.get(value)
        if entry is not None and entry[1] >= self.seq - NAMES_SLACK:
            return entry[0]
        assert self._conn is not None
        if entry is None:
            text = _name_text(value)
            row = self._conn.execute("SELECT code FROM log_names WHERE value = ?", (text,)).fetchone()
            if row is not None:  # in the file though not in memory: use it (and refresh it at flush)
                self._pending[value] = [row[0], self.seq, 0]
                return int(row[0])
            cur = self._conn.execute("INSERT INTO log_names (value, used_seq) VALUES (?, ?)", (text, self.seq))
            code = cur.lastrowid
            assert code is not None
            self._pending[value] = [code, self.seq, 1]
            return code
        self._pending[value] = [entry[0], self.seq, 0]  # refreshed at flush
        return entry[0]

    def begin(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending.clear()

    def flush(self) -> None:
        """Write the refreshed used_seq of this batch (an upsert: pruning may have removed it)."""
        assert self._conn is not None
        self._conn.executemany(
            "INSERT INTO log_names (code, value, used_seq) VALUES (?, ?, ?) "
            "ON CONFLICT(code) DO UPDATE SET used_seq = excluded.used_seq",
            [(e[0], _name_text(v), e[1]) for v, e in self._pending.items()])

    def unknown(self) -> list[tuple[int, str]]:
        """(code, JSON value) of this batch's names that memory did not hold before it."""
        return [(e[0], _name_text(v)) for v, e in self._pending.items() if v not in self._known]

    def commit(self) -> None:
        for value, entry in self._pending.items():
            self._known[value] = entry[:2]
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()

    def forget_through(self, used_seq: int) -> None:
        """Drop from memory the names pruned from the file (used at or before `used_seq`)."""
        self._known = {v: e for v, e in self._known.items() if e[1] > used_seq}

    def __len__(self) -> int:
        return len(self._known)


def _name_text(value: Hashable) -> str:
    # ASCII JSON: a lone surrogate (valid in a JSON string) cannot be bound as SQLite TEXT
    return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))


def _name_value(text: str) -> Any:
    value = json.loads(text)
    return tuple(value) if isinstance(value, list) else value


def _encode_log(names: Names, r: LogRow) -> tuple[int, int, int, bytes]:
    names.seq = r.seq
    body = None
    if r.data is not None:
        body = logcodec.encode(r.data, stream=r.stream, seq=r.seq, ms=r.created_ms, live=r.live, code=names.code)
    if body is None:
        body = logcodec.encode_raw(r.payload, live=r.live)
    return r.seq, logcodec.topic(names.code(r.sport_key), r.stream), r.created_ms, body


def _write(conn: sqlite3.Connection, b: WriteBatch, names: Names, series: HistorySeries) -> None:
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
            conn.executemany("INSERT OR REPLACE INTO quotes (event_id, bookmaker, market_key, outcome, player, "
                             "point, price, observed_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", b.quotes)
        if b.history:
            history_store.write(conn, series, b.history)
        if b.live_state:
            conn.executemany("INSERT OR REPLACE INTO live_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             b.live_state)
        if b.log:
            names.begin(conn)
            b.stored = [_encode_log(names, r) for r in b.log]
            conn.executemany("INSERT INTO stream_log (seq, topic, ms, body) VALUES (?, ?, ?, ?)", b.stored)
            b.new_names = names.unknown()
            names.flush()
        conn.execute("COMMIT")
    except BaseException:
        names.rollback()
        series.rollback()
        rollback(conn)
        raise
    names.commit()
    series.commit()


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

    def __init__(self, path: str, *, readers: int = 4, inline_max_rows: int = 0) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = connect(path)
            apply_schema(self._writer)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        self.path = path
        self.names = Names()  # the writer connection's log dictionary
        self.names.load(self._writer)
        self.history = HistorySeries()  # the line history's series numbers (history_store.py)
        self.history.load(self._writer)
        self._checkpointer: sqlite3.Connection | None = None
        if path != ":memory:":
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = connect(path)
        self._idle = [connect(path) for _ in range(readers)]
        self._read_slots = trio.CapacityLimiter(readers)
        self._write_slot = trio.CapacityLimiter(1)
        self.inline_max_rows = inline_max_rows  # 0: every commit in a worker thread
        self._inline_after = 0.0  # trio time: no inline commit before this (one was slow)
        self.inline_commits = self.thread_commits = self.inline_stalls = 0
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
        if self._write_inline(batch):
            return  # no checkpoint: a cancellation must not come between a commit and its publish
        self.thread_commits += 1
        await trio.to_thread.run_sync(_write, self._writer, batch, self.names, self.history,
                                      limiter=self._write_slot)

    def _write_inline(self, batch: WriteBatch) -> bool:
        """Commit a small batch here, in the event loop's thread; False: it must go to a worker
        thread (too big, the write slot busy, a lock held by another connection, a recent stall).
        A failure of the commit itself raises, as the threaded write does."""
        if len(batch) > self.inline_max_rows or trio.current_time() < self._inline_after:
            return False
        try:
            self._write_slot.acquire_nowait()  # a checkpoint or a prune on the writer connection
        except trio.WouldBlock:
            return False
        conn = self._writer
        try:
            conn.execute("PRAGMA busy_timeout=0")
            started = time.perf_counter()
            try:
                _write(conn, batch, self.names, self.history)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
                    return False  # rolled back: the thread waits for the lock instead
                raise
            finally:
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if time.perf_counter() - started > INLINE_STALL_S:
                self.inline_stalls += 1
                self._inline_after = trio.current_time() + INLINE_BACKOFF_S
            self.inline_commits += 1
            return True
        finally:
            self._write_slot.release()

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

    # -- pruning (the retention task) ------------------------------------------------------
    async def prune_history(self, before_ms: int) -> int:
        """Delete line history older than `before_ms`, a chunk per transaction (write slot)."""
        def run(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = history_store.prune(conn, before_ms)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
            self.history.forget(out[1])
            return out

        total = 0
        while True:
            deleted, events = await trio.to_thread.run_sync(run, self._writer, limiter=self._write_slot)
            total += deleted
            if not deleted and not events:
                return total

    async def delete_log(self, through: int, *, names: bool = False) -> int:
        """Delete the log rows up to id `through` in one transaction (and, with `names`, the
        names no remaining row uses, in the file and in the writer's memory)."""
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = delete_log_through(conn, through) if through > 0 else 0
                if names:
                    prune_names(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if names:  # here, in the write slot: no batch is being encoded meanwhile
                self.names.forget_through(pruned_through(conn) - NAMES_SLACK)
            return deleted

        return await trio.to_thread.run_sync(run, self._writer, limiter=self._write_slot)


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


def _set_pruned_through(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('pruned_through', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), excluded.value)",
        (str(seq),),
    )


# -- reading the log ------------------------------------------------------------------------

def _sport_codes(conn: sqlite3.Connection, sports: Iterable[str]) -> list[int]:
    texts = [_name_text(s) for s in sports]
    if not texts:
        return []
    sql = f"SELECT code FROM log_names WHERE value IN ({','.join('?' * len(texts))})"
    return [r[0] for r in conn.execute(sql, texts)]


def _all_topics(conn: sqlite3.Connection) -> list[int]:
    """Every topic in the log: one index seek per topic (a skip scan), not a scan of the rows."""
    return [r[0] for r in conn.execute(
        "WITH RECURSIVE t(x) AS (SELECT MIN(topic) FROM stream_log UNION ALL "
        "SELECT (SELECT MIN(topic) FROM stream_log WHERE topic > t.x) FROM t WHERE t.x IS NOT NULL) "
        "SELECT x FROM t WHERE x IS NOT NULL")]


def _topics(conn: sqlite3.Connection, streams: Sequence[str], sports: Iterable[str] | None) -> list[int] | None:
    """The topics to read, or None for every row."""
    wanted = {logcodec.STREAM_NO[s] for s in streams}
    if sports is None:
        if len(wanted) == len(ALL_STREAMS):
            return None
        return [t for t in _all_topics(conn) if t % 4 in wanted]
    return sorted(code * 4 + s for code in _sport_codes(conn, sports) for s in wanted)


def _select_log(conn: sqlite3.Connection, topics: list[int] | None, where: str, args: list[Any],
                order: str, limit: int) -> list[tuple[int, int, int, bytes]]:
    cols = "SELECT seq, topic, ms, body FROM stream_log"
    if topics is None:
        return conn.execute(f"{cols} WHERE {where} ORDER BY seq {order} LIMIT ?", [*args, limit]).fetchall()
    if not topics:
        return []
    if len(topics) > MAX_MERGED_TOPICS:
        marks = ",".join("?" * len(topics))
        return conn.execute(f"{cols} WHERE {where} AND topic IN ({marks}) ORDER BY seq {order} LIMIT ?",
                            [*args, *topics, limit]).fetchall()
    # one index range per topic, merged in id order by SQLite (no sort, stops at LIMIT)
    parts = " UNION ALL ".join(f"{cols} WHERE topic = ? AND {where}" for _ in topics)
    flat = [v for t in topics for v in (t, *args)]
    return conn.execute(f"{parts} ORDER BY seq {order} LIMIT ?", [*flat, limit]).fetchall()


def _log_rows(conn: sqlite3.Connection, query: Callable[[], list[tuple[int, int, int, bytes]]]) -> list[LogRow]:
    """Run `query` and decode its rows, in one read transaction (a prune between the rows and
    their names would leave codes without names)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        cache: dict[int, Any] = conn.names if isinstance(conn, LogConnection) else {}
        if len(cache) > MAX_CACHED_NAMES:  # names of pruned rows linger here: start again now and then
            cache.clear()

        def name(code: int) -> Any:
            value = cache.get(code)
            if value is None:
                row = conn.execute("SELECT value FROM log_names WHERE code = ?", (code,)).fetchone()
                if row is None:
                    raise StoreError(f"stream log: name {code} is missing")
                value = cache[code] = _name_value(row[0])
            return value

        out = []
        decode, stream_of = logcodec.decode, logcodec.STREAM_OF
        for seq, topic, ms, body in query():
            payload, text = decode(body, seq=seq, ms=ms, name=name)
            event_id = None if payload is None else _event_id(payload)
            out.append(LogRow(seq, stream_of[topic & 3], name(topic >> 2), event_id, bool(body[0] & 1), ms, text,
                              payload))
        return out
    finally:
        if own:
            conn.execute("COMMIT")


def _event_id(payload: dict[str, Any]) -> str | None:
    if payload["type"] == "odds_update":
        return str(payload["data"][0]["event_id"])
    return payload.get("event_id") or payload.get("match_id")


def read_log(
    conn: sqlite3.Connection,
    after: int,
    streams: Sequence[str],
    sports: Iterable[str] | None,
    limit: int,
) -> list[LogRow]:
    """Frames after `after`, oldest first, of these streams and sports (None = every sport)."""
    return _log_rows(conn, lambda: _select_log(conn, _topics(conn, streams, sports), "seq > ?", [after], "", limit))


def recent_log(conn: sqlite3.Connection, stream: str, sports: Iterable[str] | None, limit: int,
               since_ms: int | None = None, until_ms: int | None = None) -> list[LogRow]:
    """The newest frames of one stream (created within [since_ms, until_ms]), newest first.
    Times become id bounds by the binary search of `last_seq_before` (no index on times)."""
    low = last_seq_before(conn, since_ms) if since_ms is not None else 0
    high = last_seq_before(conn, until_ms + 1) if until_ms is not None else 2**62
    return _log_rows(conn, lambda: _select_log(conn, _topics(conn, (stream,), sports), "seq > ? AND seq <= ?",
                                               [low, high], "DESC", limit))


def log_ids(conn: sqlite3.Connection, stream: str, sports: Iterable[str] | None = None) -> list[int]:
    """The ids of one stream's rows (of these sports), in order: for tests and benchmarks."""
    topics = _topics(conn, (stream,), sports) or []
    marks = ",".join("?" * len(topics))
    return [r[0] for r in conn.execute(f"SELECT seq FROM stream_log WHERE topic IN ({marks}) ORDER BY seq", topics)]


def log_stream_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per stream (a scan of the topic index: for tests, benchmarks and `db stats`)."""
    counts: dict[str, int] = {}
    for topic, n in conn.execute("SELECT topic, COUNT(*) FROM stream_log GROUP BY topic"):
        stream = logcodec.STREAM_OF[topic & 3]
        counts[stream] = counts.get(stream, 0) + n
    return counts


# -- live state -----------------------------------------------------------------------------

def open_matches(conn: sqlite3.Connection, sources: Sequence[str]) -> list[tuple[Any, ...]]:
    """Matches of these sources whose last play is not final: (match_id, sport_key, home_team,
    away_team, score_a, score_b, period, clock), oldest update first."""
    if not sources:
        return []
    marks = ",".join("?" * len(sources))
    return conn.execute(
        "SELECT match_id, sport_key, home_team, away_team, score_a, score_b, period, clock FROM live_state "
        f"WHERE source IN ({marks}) AND status != 'final' ORDER BY updated_ms", list(sources)).fetchall()


def final_match_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT match_id FROM live_state WHERE status = 'final'")}


# -- pruning --------------------------------------------------------------------------------

def _first_row(conn: sqlite3.Connection, at_or_after: int) -> tuple[int, int] | None:
    row = conn.execute("SELECT seq, ms FROM stream_log WHERE seq >= ? ORDER BY seq LIMIT 1", (at_or_after,)).fetchone()
    return None if row is None else (row[0], row[1])


def last_seq_before(conn: sqlite3.Connection, before_ms: int) -> int:
    """The id of the newest row created before `before_ms` (0: none). `ms` grows with `seq`, so
    this is a binary search over ids (about 30 rowid lookups), not an index on `ms`."""
    first = _first_row(conn, 0)
    if first is None or first[1] >= before_ms:
        return 0
    lo = first[0]  # a row created before the cutoff
    hi = max_seq(conn) + 1  # every row from here on is at or after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        row = _first_row(conn, mid)
        if row is None or row[1] >= before_ms:
            hi = mid
        else:
            lo = row[0]
    return lo


def delete_log_through(conn: sqlite3.Connection, through: int) -> int:
    """Delete the rows up to id `through`; remember it for resumes (`reset`)."""
    cur = conn.execute("DELETE FROM stream_log WHERE seq <= ?", (through,))
    _set_pruned_through(conn, through)
    return cur.rowcount


def prune_names(conn: sqlite3.Connection) -> int:
    """Delete the names no remaining row uses (used_seq trails by NAMES_SLACK at most)."""
    floor = pruned_through(conn) - NAMES_SLACK
    return conn.execute("DELETE FROM log_names WHERE used_seq <= ?", (floor,)).rowcount if floor > 0 else 0


def prune_log(conn: sqlite3.Connection, before_ms: int) -> int:
    """Delete log rows created before `before_ms`; remember the highest id deleted."""
    through = last_seq_before(conn, before_ms)
    if not through:
        return 0
    deleted = delete_log_through(conn, through)
    prune_names(conn)
    return deleted


def log_extent(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(oldest id, its created ms, newest id ever); (0, 0, newest) when the log is empty."""
    row = _first_row(conn, 0)
    return (0, 0, max_seq(conn)) if row is None else (row[0], row[1], max_seq(conn))


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the pages in use (the file less its free pages, which new rows reuse)."""
    pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                         for p in ("page_count", "freelist_count", "page_size"))
    return int((pages - free) * size)

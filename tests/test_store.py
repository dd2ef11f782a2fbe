"""The store: schema version check, batched writes, log reads, pruning."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.core.board import Board
from gateway.core.frames import DROP, ODDS, PBP, drop_payload, dumps, odds_payload, pbp_payload, with_id
from gateway.core.model import Drop, Play, Quote
from gateway.retention import prune_by_age, prune_to_size
from gateway.store import (
    LogRow,
    Store,
    StoreError,
    WriteBatch,
    delete_log_through,
    last_seq_before,
    log_extent,
    log_stream_counts,
    max_seq,
    missing_schema_objects,
    prune_log,
    prune_names,
    pruned_through,
    read_log,
    recent_log,
    used_bytes,
)
from gateway.streaming import frame_from_row


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError, match="schema version 7"):
        Store(path)


async def test_batch_write_read_and_prune(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        batch = WriteBatch(log=[LogRow(i, "drop" if i % 2 else "odds", "nba", "e", False, 1000 * i, "{}")
                                for i in range(1, 11)])
        await store.write(batch)
        assert store.read_sync(max_seq) == 10
        drops = await store.read(lambda c: read_log(c, 0, ("drop",), None, 100))
        assert [r.seq for r in drops] == [1, 3, 5, 7, 9]
        assert [r.seq for r in await store.read(lambda c: read_log(c, 6, ("drop", "odds"), ["nba"], 2))] == [7, 8]
        deleted = store.write_fn_sync(lambda c: prune_log(c, 5000))
        assert deleted == 4 and store.read_sync(pruned_through) == 4
        assert store.read_sync(max_seq) == 10  # ids never go back, even after pruning
    finally:
        store.close()


async def test_failed_batch_stores_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        dup = [LogRow(1, "drop", "nba", "e", False, 1, "{}"), LogRow(1, "drop", "nba", "e", False, 1, "{}")]
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(WriteBatch(log=dup))
        assert store.read_sync(max_seq) == 0
    finally:
        store.close()


async def test_checkpoints_beside_a_busy_writer_keep_the_wal_bounded(tmp_path: Path) -> None:
    """Commits never wait for a checkpoint (SQLite's automatic one is off), yet the WAL is
    copied and restarted while the writer keeps committing, so it stops growing.

    The writer stops just after a checkpoint, not after a fixed count of commits: the WAL
    holds what was committed since the last checkpoint, and a checkpoint slowed down by a busy
    disk (fsync) could take the writer's last ~3,000 frames with it when the count ran out."""
    import trio

    path = tmp_path / "s.db"
    store = Store(str(path))
    seq = 0

    async def write_batch() -> None:
        nonlocal seq
        rows = [LogRow(seq + i + 1, "odds", "nba", "e", False, 0, "x" * 2000) for i in range(20)]
        seq += 20
        await store.write(WriteBatch(log=rows))

    try:
        with trio.fail_after(60):
            for _ in range(200):
                await write_batch()  # ~10 MB of log: far past SQLite's 1000-page auto checkpoint
            assert store.read_sync(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
            grown = (path.parent / "s.db-wal").stat().st_size
            assert grown > 8_000_000  # nothing was copied on commit
            copied = checkpoints = 0
            writing = trio.Event()
            finished = trio.Event()

            async def writer() -> None:
                # a commit every 2 ms, as at ~1000 changes/s (a tight loop on a loaded machine could
                # finish before a checkpoint got its turn)
                while not finished.is_set():
                    await write_batch()
                    if seq >= 12_000:
                        writing.set()
                    await trio.sleep(0.002)
                await write_batch()  # the first commit after the last checkpoint: it starts the WAL over

            async def checkpointer() -> None:
                nonlocal copied, checkpoints
                while True:
                    copied += await store.checkpoint()
                    checkpoints += 1
                    if writing.is_set() and checkpoints >= 3:  # 400+ commits, a few checkpoints among them
                        break
                    await trio.sleep(0.02)
                finished.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                nursery.start_soon(checkpointer)
            assert copied > 0
            log_frames = store.read_sync(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][1])
            # restarted by the first commit after the last checkpoint: it holds one or two commits of
            # ~15 frames, of the ~5,000 frames written beside the checkpoints
            assert log_frames < 200, log_frames
            assert seq > 12_000 and store.read_sync(max_seq) == seq
    finally:
        store.close()


# -- the compact stream log (schema 2) ------------------------------------------------------

MS = 1_778_612_400_000


def drop_row(seq: int, *, event: str = "ev1", sport: str = "basketball_nba", book: str = "pinnacle",
             ms: int = MS, live: bool = False, price: int = -120) -> LogRow:
    """A real odds_drop frame, as the writer logs it."""
    q = Quote(sport, event, "Home Team", "Away Team", MS + 3_600_000, book, "h2h", "home", price, None, None, ms)
    p = with_id(drop_payload(Drop(q, -110, price, (price + 100) - (-10), "toward_favorite", 1_000), timestamp_ms=ms),
                seq)
    return LogRow(seq, DROP, sport, event, live, ms, dumps(p), p)


def pbp_row(seq: int, *, sport: str = "basketball_nba", ms: int = MS, text: str = "Curry makes 3") -> LogRow:
    play = Play("m1", sport, "nba_live", "primary", "made_3", "Lakers", "Warriors", "3", "0", text, 1, "11:40",
                ms - 500, ms - 10)
    p = pbp_payload(play, seq=seq)
    return LogRow(seq, PBP, sport, "m1", True, ms, dumps(p), p)


def odds_row(seq: int, *, sport: str = "basketball_nba", ms: int = MS) -> LogRow:
    board = Board()
    board.apply(Quote(sport, "ev1", "Home Team", "Away Team", MS, "bet365", "h2h", "home", -130, None, None, ms))
    p = with_id(odds_payload(board.row(next(board.row_keys())), ("h2h",), timestamp_ms=ms), seq)
    return LogRow(seq, ODDS, sport, "ev1", False, ms, dumps(p), p)


def same(a: LogRow, b: LogRow) -> bool:
    return (a.seq, a.stream, a.sport_key, a.event_id, a.live, a.created_ms, a.payload, a.data) == (
        b.seq, b.stream, b.sport_key, b.event_id, b.live, b.created_ms, b.payload, b.data)


async def test_frames_come_back_exactly_and_small(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        odd = drop_row(5)
        assert odd.data is not None
        odd.data["future_field"] = 1  # no layout knows it: the frame is kept as its JSON text
        odd.payload = dumps(odd.data)
        rows = [drop_row(1), odds_row(2), pbp_row(3, text="Jokić \ud800 lone surrogate"), drop_row(4, live=True), odd]
        await store.write(WriteBatch(log=rows))
        back = await store.read(lambda c: read_log(c, 0, (ODDS, DROP, PBP), None, 10))
        assert [same(a, b) for a, b in zip(rows[:4], back, strict=False)] == [True] * 4
        assert (back[4].payload, back[4].data, back[4].event_id) == (odd.payload, None, None)
        assert frame_from_row(back[4]).json == odd.payload and frame_from_row(back[4]).event_id == "ev1"
        many = [drop_row(seq, event=f"ev{seq % 40}", book=("pinnacle", "bet365")[seq % 2], ms=MS + seq)
                for seq in range(6, 5006)]
        await store.write(WriteBatch(log=many))
        size = store.read_sync(lambda c: c.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('stream_log', 'stream_log_topic')").fetchone()[0])
        assert size / 5005 < 60  # with its index; the JSON alone is ~640 bytes
    finally:
        store.close()


async def test_read_log_by_streams_and_sports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(str(tmp_path / "s.db"))
    sports = ["basketball_nba", "soccer_epl", "icehockey_nhl"]
    rows = []
    for seq in range(1, 61):
        sport = sports[seq % 3]
        rows.append((drop_row, odds_row, pbp_row)[seq % 4 % 3](seq, sport=sport))
    try:
        await store.write(WriteBatch(log=rows))

        def want(streams: tuple[str, ...], only: list[str] | None, after: int = 0) -> list[int]:
            return [r.seq for r in rows
                    if r.seq > after and r.stream in streams and (only is None or r.sport_key in only)]

        cases: list[tuple[tuple[str, ...], list[str] | None, int]] = [
            ((DROP,), None, 0), ((DROP, ODDS, PBP), None, 7), ((PBP,), ["soccer_epl"], 0),
            ((ODDS, PBP), ["soccer_epl", "icehockey_nhl"], 11), ((DROP,), ["tennis_atp"], 0), ((ODDS,), [], 0)]
        for merged in (64, 1):  # index ranges merged by SQLite, and the filtered scan for many topics
            monkeypatch.setattr("gateway.store.MAX_MERGED_TOPICS", merged)
            for streams, only, after in cases:
                got = await store.read(lambda c, s=streams, o=only, a=after: read_log(c, a, s, o, 100))
                assert [r.seq for r in got] == want(streams, only, after), (streams, only, after, merged)
                assert all(r.sport_key == rows[r.seq - 1].sport_key and r.stream == rows[r.seq - 1].stream
                           for r in got)
            limited = await store.read(lambda c: read_log(c, 0, (DROP, PBP), sports, 3))
            assert [r.seq for r in limited] == want((DROP, PBP), None)[:3]
        recent = store.read_sync(lambda c: recent_log(c, DROP, ["basketball_nba"], 2))
        assert [r.seq for r in recent] == list(reversed(want((DROP,), ["basketball_nba"])))[:2]
        assert store.read_sync(log_stream_counts) == {s: len(want((s,), None)) for s in (DROP, ODDS, PBP)}
    finally:
        store.close()


async def test_prune_by_age_finds_the_cutoff_by_binary_search(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        seqs = [s for s in range(1, 400) if s % 7]  # gaps: ids a failed batch never used
        await store.write(WriteBatch(log=[drop_row(s, ms=MS + (s // 3) * 1000) for s in seqs]))
        assert store.read_sync(lambda c: last_seq_before(c, MS)) == 0
        assert store.read_sync(lambda c: last_seq_before(c, MS + 10**9)) == seqs[-1]
        for cutoff in (MS + 1, MS + 1000, MS + 51_000, MS + 51_500, MS + 130_000):
            want = max((s for s in seqs if MS + (s // 3) * 1000 < cutoff), default=0)
            assert store.read_sync(lambda c, t=cutoff: last_seq_before(c, t)) == want
        deleted = await prune_by_age(store, MS + 51_000)
        through = max(s for s in seqs if MS + (s // 3) * 1000 < MS + 51_000)
        assert deleted == len([s for s in seqs if s <= through]) and store.read_sync(pruned_through) == through
        left = await store.read(lambda c: read_log(c, 0, (DROP,), None, 1000))
        assert left[0].seq == min(s for s in seqs if s > through)
    finally:
        store.close()


async def test_names_are_pruned_with_the_last_rows_that_use_them(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.store.NAMES_SLACK", 10)
    store = Store(str(tmp_path / "s.db"))

    def names() -> set[str]:
        return {json.loads(v[0]) if v[0].startswith('"') else json.loads(v[0])[1]
                for v in store.read_sync(lambda c: c.execute("SELECT value FROM log_names").fetchall())}

    async def everything() -> list[LogRow]:
        return await store.read(lambda c: read_log(c, 0, (DROP,), None, 1000))

    try:
        await store.write(WriteBatch(log=[drop_row(s, event="old", book="bovada") for s in range(1, 21)]))
        await store.write(WriteBatch(log=[drop_row(s, event="new") for s in range(21, 101)]))
        assert {"old", "bovada", "new", "pinnacle"} <= names()
        await store.delete_log(50, names=True)
        assert names() == {"basketball_nba", "h2h", "home", "new", "pinnacle"}  # "old", "bovada": last used at 20
        assert len(store.names) == 5  # the writer's memory forgot them too
        await store.write(WriteBatch(log=[drop_row(101, event="old", book="bovada")]))  # they come back
        await store.write(WriteBatch(log=[drop_row(s) for s in range(102, 201)]))
        # pruned behind the writer's back (its memory still holds them): their next use writes them again
        store.write_fn_sync(lambda c: delete_log_through(c, 150))
        store.write_fn_sync(prune_names)
        assert "old" not in names() and len(store.names) == 8
        await store.write(WriteBatch(log=[drop_row(201, event="old", book="bovada")]))
        back = await everything()
        assert [r.seq for r in back] == list(range(151, 202))
        assert same(back[-1], drop_row(201, event="old", book="bovada")) and same(back[0], drop_row(151))
    finally:
        store.close()


async def test_a_failed_batch_leaves_no_names_behind(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(WriteBatch(log=[drop_row(1, event="lost", book="fliff"), drop_row(1)]))
        assert len(store.names) == 0 and store.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM log_names")
                                                         .fetchone()[0]) == 0
        await store.write(WriteBatch(log=[drop_row(1, event="lost", book="fliff")]))
        back = await store.read(lambda c: read_log(c, 0, (DROP,), None, 10))
        assert same(back[0], drop_row(1, event="lost", book="fliff"))
    finally:
        store.close()


V1_LOG = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE stream_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL CHECK (stream IN ('odds', 'drop', 'pbp')),
    sport_key TEXT NOT NULL, event_id TEXT, live INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
    payload TEXT NOT NULL);
CREATE INDEX stream_log_topic ON stream_log (stream, sport_key, seq);
CREATE INDEX stream_log_created ON stream_log (created_ms);
CREATE TABLE quotes (event_id TEXT NOT NULL, bookmaker TEXT NOT NULL, market_key TEXT NOT NULL, outcome TEXT NOT NULL,
    player TEXT NOT NULL DEFAULT '', point REAL, price INTEGER NOT NULL, observed_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, bookmaker, market_key, outcome, player)) WITHOUT ROWID;
INSERT INTO quotes VALUES ('ev1', 'pinnacle', 'h2h', 'home', '', NULL, -120, 1);
INSERT INTO meta VALUES ('session_secret', 'ab');
PRAGMA user_version = 1;
"""


def make_v1(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_LOG)
    conn.executemany("INSERT INTO stream_log (stream, sport_key, event_id, live, created_ms, payload) "
                     "VALUES ('drop', 'basketball_nba', 'ev1', 0, ?, ?)",
                     [(MS + i, '{"type":"odds_drop"}') for i in range(rows)])
    conn.execute("DELETE FROM stream_log WHERE seq = ?", (rows,))  # the newest id is gone, yet never reused
    conn.commit()
    conn.close()


async def test_a_version_1_database_is_migrated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "v1.db"
    make_v1(path, 300)
    store = Store(str(path))
    try:
        assert store.read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == 3
        assert store.read_sync(max_seq) == 300 and store.read_sync(pruned_through) == 300  # resumes get a reset
        assert store.read_sync(log_stream_counts) == {}
        assert store.read_sync(lambda c: c.execute("PRAGMA freelist_count").fetchone()[0]) == 0  # vacuumed
        assert store.read_sync(lambda c: c.execute("SELECT price, status FROM quotes").fetchall()) == [(-120, "open")]
        assert store.read_sync(lambda c: c.execute("SELECT value FROM meta WHERE key = 'session_secret'")
                               .fetchone()[0]) == "ab"
        await store.write(WriteBatch(log=[drop_row(301)]))
        assert [r.seq for r in await store.read(lambda c: read_log(c, 0, (DROP,), None, 10))] == [301]
    finally:
        store.close()
    assert "299 stream-log rows of schema 1 dropped (ids up to 300" in caplog.text
    again = Store(str(path))  # version 2 now: nothing more happens
    try:
        assert again.read_sync(max_seq) == 301
    finally:
        again.close()


async def test_size_limit_prunes_the_oldest_rows(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    try:
        for start in range(1, 40_001, 5_000):
            await store.write(WriteBatch(log=[drop_row(s, event=f"ev{s % 50}", ms=MS + s)
                                              for s in range(start, start + 5_000)]))
        used = store.read_sync(used_bytes)
        limit = used // 2
        deleted = await prune_to_size(store, limit)
        assert store.read_sync(used_bytes) <= limit * 0.95
        oldest, _, top = store.read_sync(log_extent)
        assert top == 40_000 and oldest == deleted + 1 and store.read_sync(pruned_through) == deleted
        assert 15_000 < deleted < 30_000
        assert await prune_to_size(store, limit) == 0  # under the high mark now: nothing more
    finally:
        store.close()


def test_a_version_2_database_gains_market_state_and_history(tmp_path: Path) -> None:
    """Schema 2 -> 3 (issue 15): quotes get a status column (open), the history tables appear,
    nothing else is touched."""
    path = str(tmp_path / "v2.db")
    store = Store(path)
    store.write_fn_sync(lambda c: c.execute("INSERT INTO quotes (event_id, bookmaker, market_key, outcome, player, "
                                            "point, price, observed_ms) VALUES ('e', 'b', 'h2h', 'home', '', NULL, "
                                            "-110, 1)"))
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE quotes DROP COLUMN status")
    for table in ("price_history", "history_series", "history_events"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.read_sync(lambda c: c.execute("PRAGMA user_version").fetchone()[0]) == 3
        assert store.read_sync(lambda c: c.execute("SELECT price, status FROM quotes").fetchall()) == [(-110, "open")]
        assert not missing_schema_objects(store._writer)
    finally:
        store.close()

"""Database tools for operators: `gateway backup FILE`, `gateway restore FILE`, `gateway db stats`.

- `backup` copies a live database with SQLite's online backup API, in one step: one read
  transaction, so the copy is one consistent snapshot (every commit before it, nothing of a
  later one), while the gateway goes on committing (WAL: readers never block the writer).
  It writes a temporary file beside FILE (mode 0600: the database holds key hashes and
  webhook secrets), checks it (`PRAGMA quick_check`), makes it a self-contained file
  (journal_mode DELETE), fsyncs it and renames it over FILE, so FILE is whole or absent.
- `restore` puts a backup in place of a stopped gateway's database: it refuses while any
  process has the database open, keeps the replaced file as `<db>.before-restore`, drops
  the old `-wal`/`-shm` (a stale WAL would be replayed onto the restored file), and moves
  the stream-log id sequence past the replaced database's last id, so no resume id is ever
  issued twice (clients holding an id newer than the copy resume after it, from the new ids).
- `db export TABLE` prints a table's rows (JSON lines or CSV) from one read snapshot.
- `db stats` prints size per table (the `dbstat` virtual table; without it, the database's
  page counts only), rows, the resume window (oldest id, the oldest Last-Event-ID still
  accepted) and the stream log's growth at its rate over the last 10 minutes, per day and
  at `retention_hours`.

`backup` and `db stats|export` only read, through a read-only connection of their own: they work
beside a running gateway and take no owner lock. sqlite-utils (a declared dependency) does
the table listing, counts, index lookups and row export here: cold paths, where it is simpler; the hot
path (store.py) stays on plain sqlite3.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import sqlite_utils

from .config import Config
from .store import SCHEMA_VERSION, StoreError, last_seq_before, log_extent, max_seq, pruned_through

RATE_WINDOW_S = 600


def open_readonly(path: str) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise StoreError(f"no database at {path} (give the gateway's --db or --config)")
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read database {path}: {exc}") from None
    return conn


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- backup ---------------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: str
    pages: int
    bytes: int
    last_event_id: int
    seconds: float


def backup(db_path: str, dest: Path) -> BackupResult:
    dest = dest.expanduser().absolute()
    live = Path(db_path)
    if any(_same_file(dest, Path(p)) for p in (live, f"{live}-wal", f"{live}-shm")) or dest == live.absolute():
        raise StoreError(f"refusing to back up {db_path} onto itself; give another FILE")
    if not dest.parent.is_dir():
        raise StoreError(f"cannot write the backup: directory {dest.parent} does not exist")
    src = open_readonly(db_path)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    started = time.monotonic()
    try:
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise StoreError(f"cannot write the backup in {dest.parent}: {exc.strerror}") from None
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, one read transaction
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy failed its check ({check}); {dest} was not written")
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            last = max_seq(dst) if _has_table(dst, "sqlite_sequence") else 0
        finally:
            dst.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except sqlite3.Error as exc:
        raise StoreError(f"backup of {db_path} failed: {exc}") from None
    finally:
        src.close()
        tmp.unlink(missing_ok=True)
    return BackupResult(str(dest), pages, dest.stat().st_size, last, time.monotonic() - started)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


# -- restore --------------------------------------------------------------------------------


def in_use(db_path: str) -> bool:
    """Whether a process has the database open: in WAL mode every open connection holds a
    shared lock on one byte of the `-shm` file (SQLite's "DMS" lock, offset 128), which an
    exclusive lock attempt cannot take while any connection exists."""
    try:
        fd = os.open(f"{db_path}-shm", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 128)
        return False
    finally:
        os.close(fd)


@dataclass
class RestoreResult:
    path: str
    last_event_id: int  # the copy's
    next_event_id: int
    kept: str | None  # the replaced database, if there was one


def restore(backup_file: Path, db_path: str) -> RestoreResult:
    source = open_readonly(str(backup_file))
    try:
        version = source.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION or not _has_table(source, "stream_log"):
            raise StoreError(f"{backup_file} is not a gateway database of schema version {SCHEMA_VERSION}")
        check = source.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{backup_file} fails its check ({check}); not restored")
        copy_last = max_seq(source)
    finally:
        source.close()
    db = Path(db_path).absolute()
    if _same_file(backup_file, db):
        raise StoreError(f"{backup_file} is the database itself")
    if in_use(str(db)):
        raise StoreError(f"{db} is open in another process (a running gateway?): stop it, then restore")
    if not db.parent.is_dir():
        raise StoreError(f"directory {db.parent} does not exist")
    old_last, kept = 0, None
    if db.exists():
        old = sqlite3.connect(db)  # fold its WAL in, so the kept file is whole
        try:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            old_last = max_seq(old) if _has_table(old, "sqlite_sequence") else 0
        except sqlite3.DatabaseError:
            pass  # a broken database is kept as it is
        finally:
            old.close()
    tmp = db.parent / f".{db.name}.restoring-{os.getpid()}"
    try:
        shutil.copyfile(backup_file, tmp)
        os.chmod(tmp, 0o600)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            if old_last > copy_last and not conn.execute(  # never issue an id twice
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = 'stream_log'", (old_last,)).rowcount:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('stream_log', ?)", (old_last,))
            conn.execute("INSERT INTO meta (key, value) VALUES ('restored', ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = excluded.value", (json.dumps({"from": str(backup_file.absolute()), "copy_last_id":
                                                                   copy_last, "replaced_last_id": old_last,
                                                                   "at_ms": int(time.time() * 1000)}),))
        finally:
            conn.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        if db.exists():
            kept = f"{db}.before-restore"
            os.replace(db, kept)
        os.replace(tmp, db)
        _fsync_dir(db.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return RestoreResult(str(db), copy_last, max(copy_last, old_last) + 1, kept)


# -- stats ----------------------------------------------------------------------------------


@dataclass
class TableStats:
    name: str
    rows: int
    bytes: int | None  # the table and its indexes; None without dbstat
    indexes: int


@dataclass
class Stats:
    path: str
    file_bytes: int
    wal_bytes: int
    page_size: int
    pages: int
    free_pages: int
    dbstat: bool
    tables: list[TableStats] = field(default_factory=list)
    oldest_id: int | None = None
    newest_id: int = 0
    next_id: int = 1  # ids are never reused: the sequence may be past the newest row
    resume_floor: int = 0  # the oldest Last-Event-ID still accepted
    oldest_created_ms: int | None = None
    rows_per_s: float | None = None
    bytes_per_log_row: float | None = None
    projected_bytes_per_day: float | None = None
    projected_steady_bytes: float | None = None
    retention_hours: float = 0.0
    free_disk_bytes: int = 0


def _btree_bytes(conn: sqlite3.Connection) -> dict[str, int] | None:
    try:
        return {name: int(size) for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")}
    except sqlite3.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        return None


def stats(db_path: str, *, retention_hours: float, now_ms: int | None = None, use_dbstat: bool = True) -> Stats:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    conn = open_readonly(db_path)
    try:
        conn.execute("BEGIN")  # one snapshot for every figure
        db = sqlite_utils.Database(conn)
        pragma = {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count", "freelist_count")}
        sizes = _btree_bytes(conn) if use_dbstat else None
        wal = Path(f"{db_path}-wal")
        out = Stats(db_path, Path(db_path).stat().st_size, wal.stat().st_size if wal.exists() else 0,
                    pragma["page_size"], pragma["page_count"], pragma["freelist_count"], sizes is not None,
                    retention_hours=retention_hours, free_disk_bytes=shutil.disk_usage(Path(db_path).parent).free)
        for name in sorted(db.table_names()):
            table = db[name]
            indexes = [ix.name for ix in table.indexes]  # type: ignore[union-attr]
            # indexes include the implicit ones of UNIQUE and PRIMARY KEY constraints
            size = None if sizes is None else sum(sizes.get(n, 0) for n in (name, *indexes))
            out.tables.append(TableStats(name, table.count, size, len(indexes)))
        if "stream_log" in db.table_names():
            _log_figures(conn, out, now_ms)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read database {db_path}: {exc}") from None
    finally:
        conn.close()
    return out


def _log_figures(conn: sqlite3.Connection, out: Stats, now_ms: int) -> None:
    oldest, oldest_ms, _ = log_extent(conn)  # `ms` grows with `seq`: no index on it (store.py)
    newest = conn.execute("SELECT MAX(seq) FROM stream_log").fetchone()[0]
    out.oldest_id, out.oldest_created_ms = (oldest, oldest_ms) if oldest else (None, None)
    out.newest_id = newest or 0
    out.next_id = max(out.newest_id, max_seq(conn)) + 1
    out.resume_floor = pruned_through(conn)
    since = now_ms - RATE_WINDOW_S * 1000
    before = last_seq_before(conn, since)  # rows after this id were created in the window
    recent = conn.execute("SELECT COUNT(*) FROM stream_log WHERE seq > ?", (before,)).fetchone()[0]
    span_s = (now_ms - max(since, oldest_ms if oldest_ms is not None else since)) / 1000  # a younger log: its age
    out.rows_per_s = recent / max(span_s, 1.0)
    log = next(t for t in out.tables if t.name == "stream_log")
    if log.bytes is not None and log.rows:
        out.bytes_per_log_row = log.bytes / log.rows
        out.projected_bytes_per_day = out.bytes_per_log_row * out.rows_per_s * 86400
        out.projected_steady_bytes = out.bytes_per_log_row * out.rows_per_s * out.retention_hours * 3600


def _size(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def format_stats(s: Stats) -> str:
    lines = [f"database {s.path}: {_size(s.file_bytes)} (WAL {_size(s.wal_bytes)}), {s.pages} pages of "
             f"{s.page_size} B, {s.free_pages} free; free disk {_size(s.free_disk_bytes)}"]
    width = max([len(t.name) for t in s.tables] + [5])
    lines.append(f"{'table':<{width}}  {'rows':>12}  {'size':>10}  indexes")
    for t in sorted(s.tables, key=lambda t: -(t.bytes or 0)):
        lines.append(f"{t.name:<{width}}  {t.rows:>12,}  {_size(t.bytes):>10}  {t.indexes}")
    if not s.dbstat:
        lines.append("(this SQLite has no dbstat table: sizes per table are unknown; the page counts above are exact)")
    if s.rows_per_s is not None:
        floor = (f"any Last-Event-ID >= {s.resume_floor}" if s.resume_floor else "any Last-Event-ID (nothing pruned)")
        lines.append(f"stream log: ids {s.oldest_id if s.oldest_id is not None else '-'}..{s.newest_id} (next "
                     f"{s.next_id}), oldest row {_when(s.oldest_created_ms)}; resumable: {floor}")
        lines.append(f"rate over the last {RATE_WINDOW_S // 60} min (or the log's age): {s.rows_per_s:.1f} log rows/s, "
                     f"{s.bytes_per_log_row or 0:.0f} B/row with indexes -> +{_size(s.projected_bytes_per_day)}/day; "
                     f"at retention_hours = {s.retention_hours:g}: ~{_size(s.projected_steady_bytes)} of stream log")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------

COMMANDS = ("backup", "restore", "db")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    b = sub.add_parser("backup", parents=[common], help="copy the live database to FILE (online, consistent)")
    b.add_argument("file", type=Path)
    r = sub.add_parser("restore", parents=[common], help="put a backup in place of a stopped gateway's database")
    r.add_argument("file", type=Path)
    db = sub.add_parser("db", help="inspect the database")
    ds = db.add_subparsers(dest="db_command", required=True)
    st = ds.add_parser("stats", parents=[common], help="size per table, rows, resume window, growth (read-only)")
    st.add_argument("--json", action="store_true", help="one JSON object instead of text")
    ex = ds.add_parser("export", parents=[common], help="print a table's rows as JSON lines or CSV (read-only)")
    ex.add_argument("table")
    ex.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")


def run(args: argparse.Namespace, config: Config) -> int:
    db_path = config.db_path()
    if args.command == "backup":
        b = backup(db_path, args.file)
        print(f"backed up {db_path} to {b.path}: {_size(b.bytes)}, {b.pages} pages, last event id "
              f"{b.last_event_id}, in {b.seconds:.2f} s")
    elif args.command == "restore":
        r = restore(args.file, db_path)
        kept = f"; the replaced database is kept as {r.kept}" if r.kept else ""
        print(f"restored {args.file} to {r.path}: its last event id is {r.last_event_id}, the next id will be "
              f"{r.next_event_id}{kept}")
    elif args.db_command == "export":
        export(db_path, args.table, args.format, sys.stdout)
    else:
        s = stats(db_path, retention_hours=config.database.retention_hours)
        print(json.dumps(asdict(s), indent=2) if args.json else format_stats(s))
    sys.stdout.flush()
    return 0


def export(db_path: str, table: str, fmt: str, out: TextIO) -> int:
    """Every row of `table`, in one read snapshot; returns the number of rows written."""
    conn = open_readonly(db_path)
    try:
        db = sqlite_utils.Database(conn)
        names = db.table_names()
        if table not in names:
            raise StoreError(f"no table {table!r}; tables: {', '.join(sorted(names))}")
        conn.execute("BEGIN")
        n = 0
        columns = list(db[table].columns_dict)  # type: ignore[union-attr]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        for row in db[table].rows:  # type: ignore[union-attr]
            if writer is not None:
                writer.writerow(row)
            else:
                out.write(json.dumps(row) + "\n")
            n += 1
        return n
    finally:
        conn.close()

"""`gateway backup FILE`, `gateway restore FILE` and `gateway db stats`, run as real processes
beside a real `gateway serve` under ingest load with a stream open."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.dbtools import format_stats, in_use, stats

from .helpers import Event, next_of, quote, sse_events
from .selfhost import free_port

CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
SPORT = "basketball_nba"


def cli(*args: str, db: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args, "--config", str(CONFIG), "--db", str(db)],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


class Serving:
    """`gateway serve --no-feeds` on a free port; the demo key (enterprise, ingest) from its banner."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db.with_name(f"{db.name}.{self.port}.log")  # the access log: a pipe nobody reads would fill
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(CONFIG), "--db",
                                          str(db), "--port", str(self.port), "--no-feeds"],
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.key = ""

    async def started(self) -> Serving:
        while not self.key:
            line = await trio.to_thread.run_sync(self.proc.stdout.readline)  # type: ignore[union-attr]
            assert line, self.log.read_text()
            if "demo key" in line:
                self.key = line.split()[-1]
        return self

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(self.proc.wait, 20) == 0


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def rows(prefix: str, n: int, price: int = -110) -> list[dict[str, Any]]:
    return [quote(price, event=f"{prefix}{i}") for i in range(n)]


async def test_backup_under_ingest_load_then_restore_and_resume(tmp_path: Path) -> None:
    db, copy = tmp_path / "live.db", tmp_path / "backups" / "copy.db"
    copy.parent.mkdir()
    gw = await Serving(db).started()
    acked: list[tuple[float, str]] = []  # (monotonic time of the 200, event id)
    seen: list[tuple[float, int]] = []  # (monotonic time, frame id) on an open stream
    try:
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=gw.url, timeout=httpx.Timeout(10, read=30),
                                         headers={"X-API-Key": gw.key}) as c:
                for b in range(20):  # some volume first, so that the copy takes a while
                    assert (await c.post("/v1/ingest/odds", json=rows(f"pre{b}_", 500))).status_code == 200

                async def ingest(stop: trio.Event) -> None:
                    n = 0
                    while not stop.is_set():
                        batch = rows(f"live{n}_", 20)
                        r = await c.post("/v1/ingest/odds", json=batch)
                        assert r.status_code == 200 and r.json()["accepted"] == 20
                        acked.extend((time.monotonic(), row["event_id"]) for row in batch)
                        n += 1

                async def watch(stop: trio.Event) -> None:
                    async with c.stream("GET", f"/v1/sse/odds/{SPORT}", params={"limit": 1}) as resp:
                        async for ev in sse_events(resp):
                            if ev.id is not None:
                                seen.append((time.monotonic(), int(ev.id)))
                            if stop.is_set():
                                return

                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ingest, stop)
                    nursery.start_soon(watch, stop)
                    await trio.sleep(1.0)
                    began = time.monotonic()
                    done = await trio.run_process([sys.executable, "-m", "gateway", "backup", str(copy), "--config",
                                                   str(CONFIG), "--db", str(db)], capture_stdout=True,
                                                  capture_stderr=True, check=False)
                    ended = time.monotonic()
                    await trio.sleep(0.5)
                    stop.set()
            assert done.returncode == 0, done.stderr
            assert b"backed up" in done.stdout and b"last event id" in done.stdout
            before = {ev for t, ev in acked if t < began}
            # ingest and the stream went on while `gateway backup` ran (startup included)
            during = [t for t, _ in acked if began <= t <= ended]
            assert during and [t for t, _ in seen if began <= t <= ended], (ended - began, len(acked))
            assert max(b - a for a, b in zip(sorted(t for t, _ in acked), sorted(t for t, _ in acked)[1:],
                                             strict=False)) < 1.0
            # the copy: whole, and holding every row acknowledged before the backup started
            con = sqlite3.connect(copy)
            try:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
                stored = {r[0] for r in con.execute("SELECT event_id FROM quotes")}
                copy_last = con.execute("SELECT MAX(seq) FROM stream_log").fetchone()[0]
            finally:
                con.close()
            assert before and before <= stored, len(before - stored)
            assert copy_last >= max(i for t, i in seen if t < began)
            assert oct(copy.stat().st_mode & 0o777) == "0o600"
            live_last = max(i for _, i in seen)
            assert live_last > copy_last  # the live database went on past the copy

            # restore: refused while the gateway runs; then in place of the stopped one
            busy = cli("restore", str(copy), db=db, cwd=tmp_path)
            assert busy.returncode == 2 and "is open in another process" in busy.stderr, busy
            await gw.stop()
            assert not in_use(str(db))
            restored = cli("restore", str(copy), db=db, cwd=tmp_path)
            assert restored.returncode == 0, restored.stderr
            assert f"its last event id is {copy_last}" in restored.stdout
            assert {"live.db", "live.db.before-restore"} <= names(tmp_path) and "live.db-wal" not in names(tmp_path)

            gw = await Serving(db).started()
            async with httpx.AsyncClient(base_url=gw.url, timeout=httpx.Timeout(10, read=30),
                                         headers={"X-API-Key": gw.key}) as c:
                # a client that had seen up to an id in the copy resumes from the copy
                async with c.stream("GET", f"/v1/sse/odds/{SPORT}", headers={"Last-Event-ID": str(copy_last - 3)},
                                    params={"limit": 1}) as resp:
                    events = sse_events(resp)
                    replayed = [await next_of(events, "odds_update") for _ in range(3)]
                    assert [int(e.id or 0) for e in replayed] == [copy_last - 2, copy_last - 1, copy_last]
                    await c.post("/v1/ingest/odds", json=[quote(-150, event="after")])
                    new: Event = await next_of(events, "odds_update")
                # ids are never issued twice: the new ones start past what the replaced database issued
                assert int(new.id or 0) > live_last and new.data["data"][0]["event_id"] == "after"
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()


def test_backup_and_restore_refuse_operator_mistakes(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    missing = cli("backup", str(tmp_path / "b.db"), db=db, cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no database at" in missing.stderr
    assert not db.exists()  # nothing created
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    onto_itself = cli("backup", str(db), db=db, cwd=tmp_path)
    assert onto_itself.returncode == 2 and "onto itself" in onto_itself.stderr
    nowhere = cli("backup", str(tmp_path / "no" / "b.db"), db=db, cwd=tmp_path)
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE x (y)").connection.close()
    not_ours = cli("restore", str(foreign), db=db, cwd=tmp_path)
    assert not_ours.returncode == 2 and "is not a gateway database" in not_ours.stderr
    for done in (missing, onto_itself, nowhere, not_ours):
        assert "Traceback" not in done.stderr


async def test_db_stats_beside_a_running_gateway(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    gw = await Serving(db).started()
    try:
        with trio.fail_after(30):
            async with httpx.AsyncClient(base_url=gw.url, headers={"X-API-Key": gw.key}) as c:
                for b in range(3):
                    assert (await c.post("/v1/ingest/odds", json=rows(f"s{b}_", 100))).status_code == 200
            text = await trio.to_thread.run_sync(lambda: cli("db", "stats", db=db, cwd=tmp_path))
            as_json = await trio.to_thread.run_sync(lambda: cli("db", "stats", "--json", db=db, cwd=tmp_path))
    finally:
        await gw.stop()
    assert text.returncode == 0 and as_json.returncode == 0, (text.stderr, as_json.stderr)
    report = json.loads(as_json.stdout)
    tables = {t["name"]: t for t in report["tables"]}
    assert tables["stream_log"]["rows"] == 300 and tables["quotes"]["rows"] == 300
    assert tables["stream_log"]["bytes"] > 300 * 20 and report["dbstat"] is True  # compact rows: ~50 B each
    assert (report["oldest_id"], report["newest_id"], report["resume_floor"]) == (1, 300, 0)
    assert report["rows_per_s"] > 0 and report["projected_bytes_per_day"] > 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"database {db}") and any(line.startswith("stream_log") for line in lines)
    assert "ids 1..300 (next 301)" in text.stdout and "/day" in text.stdout


def test_db_stats_without_dbstat_reports_page_counts(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('a', 'b');")
    con.close()
    s = stats(str(db), retention_hours=48, use_dbstat=False)
    assert s.dbstat is False and s.pages >= 2 and [(t.name, t.rows, t.bytes) for t in s.tables] == [("meta", 1, None)]
    assert "no dbstat table" in format_stats(s)


@pytest.mark.parametrize("with_shm", [False, True])
def test_in_use_sees_an_open_connection(tmp_path: Path, with_shm: bool) -> None:
    db = tmp_path / "g.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x)")
    if not with_shm:
        con.close()
        assert not in_use(str(db))
        return
    # another process holds it open: the check runs here, where no connection is open
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
                               "c.execute('SELECT * FROM t').fetchall(); print('open', flush=True); time.sleep(30)",
                               str(db)], stdout=subprocess.PIPE, text=True)
    try:
        con.close()
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert in_use(str(db))
    finally:
        holder.kill()
        holder.wait()
    assert not in_use(str(db))


def test_db_export_prints_a_table_from_a_read_only_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE books (key TEXT PRIMARY KEY, title TEXT, coverage TEXT);"
                      "INSERT INTO books VALUES ('pinnacle', 'Pinnacle', 'per_market'), ('fanduel', 'FanDuel, Inc', "
                      "'game_line');")
    con.close()
    lines = cli("db", "export", "books", db=db, cwd=tmp_path)
    assert lines.returncode == 0 and [json.loads(x)["key"] for x in lines.stdout.splitlines()] == ["pinnacle",
                                                                                                   "fanduel"]
    as_csv = cli("db", "export", "books", "--format", "csv", db=db, cwd=tmp_path)
    assert as_csv.stdout.splitlines() == ["key,title,coverage", "pinnacle,Pinnacle,per_market",
                                          'fanduel,"FanDuel, Inc",game_line']
    unknown = cli("db", "export", "nope", db=db, cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.strip() == "gateway: no table 'nope'; tables: books"

"""One owner per database (issue 13, item 1): the lock file, refusals, and what may run beside."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import trio

import gateway.testing
from gateway.feeds.replay import DEMO_RECORDING
from gateway.ownership import DatabaseOwned, Owner, Ownership, lock_path, parse_owner, read_owner
from gateway.startup import find_exception
from gateway.store import Store, connect

from .cli_processes import recording, run_cli, serving, status, wait_for
from .helpers import quote

OWNED_LINE = re.compile(r"^gateway: (?P<db>\S+) is owned by pid (?P<pid>\d+) \((?P<url>http://[^)]+)\), "
                        r"started \d{4}-\d\d-\d\d \d\d:\d\d UTC; stop it or use another --db$")


# -- the module ------------------------------------------------------------------------------

def test_owner_describes_itself() -> None:
    owner = Owner(4242, "http://127.0.0.1:8080", "2026-12-03T09:12:41+00:00")
    assert owner.describe() == "pid 4242 (http://127.0.0.1:8080), started 2026-12-03 09:12 UTC"
    assert Owner(7).describe() == "pid 7"
    assert parse_owner(json.dumps({"pid": 7, "address": None})) == Owner(7)
    for junk in ("", "{", "[]", '{"pid": "7"}', '{"pid": true}'):
        assert parse_owner(junk) is None


def test_a_second_owner_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    first = Ownership(db)
    first.acquire()
    first.announce("http://127.0.0.1:1234")
    assert read_owner(db) == Owner(os.getpid(), "http://127.0.0.1:1234", first._started)
    second = Ownership(db)  # same process, another open file: still excluded (flock is per open file)
    with pytest.raises(DatabaseOwned) as refused:
        second.acquire()
    assert str(refused.value).startswith(f"{db} is owned by pid {os.getpid()} (http://127.0.0.1:1234), started ")
    assert not second.held
    first.release()
    assert lock_path(db).read_text() == ""  # emptied, not removed (see release)
    with Ownership(db) as third:
        assert third.held and read_owner(db) == Owner(os.getpid(), None, third._started)
    assert read_owner(db) is None


def test_a_symlink_to_the_database_shares_its_lock(tmp_path: Path) -> None:
    (tmp_path / "real.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "real.db")
    with Ownership(str(tmp_path / "real.db")), pytest.raises(DatabaseOwned):
        Ownership(str(tmp_path / "link.db")).acquire()


def test_memory_databases_need_no_lock() -> None:
    with Ownership(":memory:") as a, Ownership(":memory:") as b:
        assert not a.held and not b.held


HOLDER = """
import sys, time
from gateway.ownership import Ownership
own = Ownership(sys.argv[1]); own.acquire(); own.announce("http://127.0.0.1:9")
print("locked", flush=True)
time.sleep(60)
"""


def test_kill_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(DatabaseOwned, match=rf"owned by pid {proc.pid} \(http://127.0.0.1:9\)"):
            Ownership(db).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert read_owner(db) == Owner(proc.pid, "http://127.0.0.1:9", read_owner(db).started)  # type: ignore[union-attr]
    with Ownership(db) as own:  # the kernel let go with the process: not stale
        assert own.held


async def test_two_testing_gateways_on_one_database(tmp_path: Path) -> None:
    config = gateway.testing.gateway_config(tmp_path)
    with trio.fail_after(20):
        async with gateway.testing.open_gateway(config) as first:
            with pytest.raises(BaseException) as refused:  # a group around DatabaseOwned
                async with gateway.testing.open_gateway(config):
                    pass
            assert isinstance(find_exception(refused.value, (DatabaseOwned,)), DatabaseOwned)
            await first.move("evt1", "pinnacle", "h2h", "home", -110, -130)  # the first writes on
            assert first.gateway.writer.drops_published == 1
    with Ownership(config.db_path()) as after:  # released at the end: the next one may start
        assert after.held


def test_cli_commands_leave_a_current_schema_alone(tmp_path: Path) -> None:
    """`keys create`/`list` beside a running gateway: opening the store must not write (the
    schema script ends with `PRAGMA user_version`, a write that queued behind the writer)."""
    db = str(tmp_path / "g.db")
    Store(db, readers=1).close()
    writer = connect(db)
    writer.execute("BEGIN IMMEDIATE")  # a running gateway's writer, mid-transaction
    opened: list[Store] = []
    thread = threading.Thread(target=lambda: opened.append(Store(db, readers=1)), daemon=True)
    thread.start()
    thread.join(3)
    blocked = thread.is_alive()
    writer.execute("ROLLBACK")
    thread.join(40)
    for store in opened:
        store.close()
    writer.close()
    assert not blocked, "opening a store at the current schema version waited for the writer's lock"


def test_a_file_missing_a_table_still_gets_it(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    Store(db, readers=1).close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE webhook_deliveries")
    Store(db, readers=1).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_deliveries").fetchone() == (0,)


# -- real processes --------------------------------------------------------------------------

def test_a_second_gateway_refuses_and_the_first_runs_on(tmp_path: Path) -> None:
    """Before: the second gateway rotated the demo key and wrote stream-log ids the first one
    also used: the first one's writer failed every batch after that (`UNIQUE constraint
    failed: stream_log.seq`) while /readyz stayed ready. Now the second refuses at start,
    before it writes anything, and `gateway record` works beside as a client."""
    db = tmp_path / "shared.db"
    with serving(["serve", "--db", str(db), "--port", "0", "--no-feeds"], cwd=tmp_path) as first:
        url, demo = first.url, first.demo_key
        assert "feeds: none (HTTP push only)" in first.banner  # --no-feeds (it said "simulator")
        owner = json.loads(lock_path(str(db)).read_text())
        assert owner["pid"] == first.proc.pid and owner["address"] == url
        before = _contents(db)
        for second in (["serve", "--db", str(db), "--port", "0"],  # with the simulator feed
                       ["replay", str(DEMO_RECORDING), "--speed", "1000", "--db", str(db), "--port", "0"]):
            done = run_cli(second, cwd=tmp_path, timeout=20)
            assert done.returncode == 2, done.stderr
            lines = done.stderr.splitlines()
            assert len(lines) == 1, done.stderr
            found = OWNED_LINE.match(lines[0])
            assert found and found["pid"] == str(first.proc.pid) and found["url"] == url, lines[0]
            assert done.stdout == ""
        assert _contents(db) == before  # the refused ones wrote nothing (no key rotated, no id taken)
        with recording([str(tmp_path / "rec.jsonl"), "--db", str(db)], cwd=tmp_path) as record:
            assert record.first_line.startswith(f"recording {url} ")  # a client of both streams
            assert record.finish()[0] == 0
        with httpx.Client(base_url=url, headers={"X-API-Key": demo}, timeout=10) as c:
            for price in (-110, -130):
                r = c.post("/v1/ingest/odds", json=[quote(price)])
                assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            assert c.get("/readyz").json()["status"] == "ready"
            drops = c.get("/v1/odds-drop/all/recent", params={"threshold": 1}).json()
            assert [(d["prev"], d["new"]) for d in drops] == [(-110, -130)], drops
        assert "UNIQUE constraint" not in first.stderr() and "failed to commit" not in first.stderr()


def _contents(db: Path) -> tuple[object, ...]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return (conn.execute("SELECT name, key_hash, revoked_ms FROM api_keys ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM sqlite_sequence").fetchall(),
                conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall(),
                conn.execute("PRAGMA user_version").fetchone())
    finally:
        conn.close()


def test_keys_beside_a_running_gateway_count_within_2_s(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    with serving(["serve", "--db", str(db), "--port", "0", "--no-feeds"], cwd=tmp_path) as running:
        created = run_cli(["keys", "create", "--tier", "business", "--name", "bot1", "--db", str(db)], cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        took = wait_for(lambda: status(running.url, key) == 200, 5, "a created key works")
        assert took <= 2.5
        listed = run_cli(["keys", "list", "--db", str(db)], cwd=tmp_path)
        assert listed.returncode == 0 and "bot1" in listed.stdout and "demo" in listed.stdout, listed.stderr
        checked = run_cli(["check-config", "--db", str(db)], cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr
        revoked = run_cli(["keys", "revoke", "bot1", "--db", str(db)], cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        took = wait_for(lambda: status(running.url, key) == 401, 5, "a revoked key is refused")
        assert took <= 2.5  # the key cache keeps a lookup 2 s; the rest is polling on a shared machine
        assert status(running.url, running.demo_key) == 200
        assert "UNIQUE constraint" not in running.stderr() and "failed to commit" not in running.stderr()

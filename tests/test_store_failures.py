"""A 200 means stored, always (issues 13.2 and 14.5).

When a commit fails (a full disk, a read-only database, a commit that raises, a value the
store refuses), the requests waiting on it get 503 `store_unavailable` with `Retry-After`,
/readyz turns not-ready with the reason, nothing of the batch is published, and the writer
recovers once the cause goes away. Each test counts what was acknowledged against what is
stored and what an open stream delivered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

from gateway.core.model import Quote
from gateway.store import Store, read_log
from gateway.testing import GatewayHandle, open_gateway
from gateway.writer import StoreUnavailable

from .helpers import sse_events


def _row(i: int, price: int, event: str = "evt") -> dict[str, Any]:
    return {"sport_key": "basketball_nba", "event_id": f"{event}{i}", "home_team": "Home", "away_team": "Away",
            "commence_time": "2031-05-12T22:30:00Z", "bookmaker": "pinnacle", "market_key": "h2h",
            "outcome": "home", "price": price}


def _stored(gw: GatewayHandle) -> tuple[list[int], set[str]]:
    """(ids of the stored odds frames, events with a stored price)."""
    conn = sqlite3.connect(gw.gateway.store.path)
    try:
        ids = [r.seq for r in read_log(conn, after=0, streams=("odds",), sports=None, limit=10**6)]
        return ids, {r[0] for r in conn.execute("SELECT event_id FROM quotes")}
    finally:
        conn.close()


async def _ingest_under_fault(gw: GatewayHandle, fault: Callable[[bool], None]) -> None:
    """Ingest in a loop with an odds stream open; switch `fault` on then off; then check that
    every acknowledged request is stored, every 503 was answered as such, ids are never
    reused, the stream delivered exactly stored frames, and /readyz followed the fault."""
    acked: list[int] = []  # requests answered 200 (request n pushes event evt<n>)
    refused: list[int] = []
    delivered: list[int] = []
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=httpx.Timeout(10, read=30)) as c, \
            trio.open_nursery() as nursery:
        async def watch() -> None:
            async with c.stream("GET", "/v1/sse/odds/basketball_nba",
                                params={"apiKey": gw.key, "heartbeat_s": 1}) as resp:
                async for ev in sse_events(resp):
                    if ev.id is not None:
                        delivered.append(int(ev.id))

        nursery.start_soon(watch)

        async def push(n: int) -> None:
            r = await c.post("/v1/ingest/odds", json=[_row(n, -110)], headers={"X-API-Key": gw.key})
            if r.status_code == 200:
                acked.append(n)
            else:
                assert r.status_code == 503, r.text
                body = r.json()
                assert body["error"] == "store_unavailable" and r.headers["Retry-After"] == "5"
                refused.append(n)

        n = 0
        for phase in ("before", "fault", "after"):
            if phase == "fault":
                fault(True)
            elif phase == "after":
                fault(False)
                with trio.fail_after(5):  # the probe clears the failure with no ingest needed
                    while (await c.get("/readyz")).status_code != 200:  # noqa: ASYNC110
                        await trio.sleep(0.1)
            for _ in range(30):
                async with trio.open_nursery() as pushes:
                    for _ in range(4):
                        pushes.start_soon(push, n)
                        n += 1
            if phase == "fault":
                ready = await c.get("/readyz")
                assert ready.status_code == 503 and ready.json()["store_error"], ready.text
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert len(refused) >= 30 and len(acked) >= 200, (len(refused), len(acked))
    ids, events = _stored(gw)
    assert {f"evt{n}" for n in acked} <= events, "an acknowledged row is not stored"
    assert not {f"evt{n}" for n in refused} & events, "a refused row was stored"
    assert delivered == [i for i in ids if i >= delivered[0]], "the stream and the store disagree"
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert gw.gateway.writer.failure is None


async def test_a_commit_that_raises_answers_503_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.store as store_module

    original = store_module._write
    broken = {"on": False}

    def write(conn: sqlite3.Connection, *args: Any) -> None:
        if broken["on"]:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        original(conn, *args)

    monkeypatch.setattr(store_module, "_write", write)
    async with open_gateway() as gw:
        await _ingest_under_fault(gw, lambda on: broken.__setitem__("on", on))


async def test_a_full_disk_answers_503_and_recovers() -> None:
    """SQLite's size limit stands in for a full disk: the same SQLITE_FULL error."""
    async with open_gateway() as gw:
        conn = gw.gateway.store._writer

        def fault(on: bool) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages if on else 1_000_000_000}")

        await _ingest_under_fault(gw, fault)


async def test_a_read_only_database_answers_503_and_recovers() -> None:
    async with open_gateway() as gw:
        conn = gw.gateway.store._writer
        await _ingest_under_fault(gw, lambda on: conn.execute(f"PRAGMA query_only = {int(on)}"))


async def test_a_row_the_store_refuses_costs_no_other_request_its_place() -> None:
    """A lone surrogate in a team name (past the parser, as a bug or another path could
    bring it) made SQLite refuse the whole batch: 30 well-formed pushes in it got 200 and
    were lost, and the bad event stayed in memory, breaking later pushes and new streams."""
    async with open_gateway() as gw:
        writer = gw.gateway.writer
        now = gw._now()
        good = [Quote("basketball_nba", f"ok{i}", "Home", "Away", now + 3_600_000, "pinnacle", "h2h", "home",
                      -110 - i, None, None, now) for i in range(30)]
        bad = Quote("basketball_nba", "bad", "Home \ud800", "Away", now + 3_600_000, "pinnacle", "h2h", "home",
                    -120, None, None, now)
        outcome: dict[str, str] = {}
        tries: list[int] = []  # requests per transaction tried
        original_try = writer._try

        async def counting_try(items: list[Any]) -> BaseException | None:
            tries.append(len(items))
            return await original_try(items)

        writer._try = counting_try  # type: ignore[method-assign]

        async def submit(name: str, quotes: list[Quote]) -> None:
            try:
                await writer.submit_and_wait(quotes, [], source="test")
                outcome[name] = "stored"
            except StoreUnavailable as exc:
                outcome[name] = exc.reason

        slot = gw.gateway.store._write_slot  # held, so that all the pushes queue and join one batch
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await slot.acquire()
                nursery.start_soon(submit, "first", [good[0]])
                await trio.sleep(0.05)
                for i, q in enumerate(good[1:15]):
                    nursery.start_soon(submit, f"good{i}", [q])
                nursery.start_soon(submit, "bad", [bad])
                for i, q in enumerate(good[15:]):
                    nursery.start_soon(submit, f"good{i + 14}", [q])
                await trio.sleep(0.1)
                slot.release()
        assert tries[:2] == [1, 30] and tries[2:] == [1] * 30  # one batch with all 30, then each alone
        assert "UnicodeEncodeError" in outcome.pop("bad")
        assert set(outcome.values()) == {"stored"} and len(outcome) == 30
        conn = sqlite3.connect(gw.gateway.store.path)
        try:
            events = {r[0] for r in conn.execute("SELECT event_id FROM quotes")}
        finally:
            conn.close()
        assert events == {f"ok{i}" for i in range(30)}
        assert "bad" not in gw.gateway.board.events  # not left in memory
        await gw.push_quotes([{"sport_key": "basketball_nba", "event_id": "bad", "home_team": "Home",
                               "away_team": "Away", "commence_time": now + 3_600_000, "bookmaker": "pinnacle",
                               "market_key": "h2h", "outcome": "home", "price": -130}])
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=httpx.Timeout(10, read=30)) as c, \
                c.stream("GET", "/v1/sse/odds/basketball_nba", params={"apiKey": gw.key}) as resp:
            events_seen = sse_events(resp)
            assert (await events_seen.__anext__()).data["type"] == "connected"
            snapshot = (await events_seen.__anext__()).data
        assert snapshot["type"] == "initial_state" and snapshot["count"] == 31


def test_store_rollback_after_sqlite_ended_the_transaction(tmp_path: Any) -> None:
    """A failed COMMIT that SQLite already rolled back must not raise a second error over it."""
    store = Store(str(tmp_path / "s.db"), readers=1)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            store.write_fn_sync(lambda c: c.execute("INSERT INTO nowhere VALUES (1)"))
        assert store.write_fn_sync(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1
    finally:
        store.close()

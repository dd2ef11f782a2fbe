"""What one small ingest costs the store (issue 19): a request commits its own rows when the
writer is idle, in order with whatever is queued; an unchanged event is not rewritten; an
event's history last_ms is rewritten once a minute; no webhook pass per commit without
webhooks."""

from __future__ import annotations

import sqlite3
from typing import Any

import trio

from gateway.core.model import Quote
from gateway.core.parse import parse_flat_quote
from gateway.history_store import LAST_MS_GRAIN
from gateway.store import Store, WriteBatch
from gateway.testing import GatewayHandle, open_gateway
from gateway.web.asgi_scope import new_request_id

BASE = {"sport_key": "basketball_nba", "event_id": "evt1", "home_team": "Home", "away_team": "Away",
        "commence_time": "2031-05-12T22:30:00Z", "bookmaker": "pinnacle", "market_key": "h2h", "outcome": "home"}


def _quote(price: int, **over: Any) -> Quote:
    return parse_flat_quote({**BASE, **over, "price": price}, now_ms=1_900_000_000_000)


def _db(gw: GatewayHandle) -> sqlite3.Connection:
    return sqlite3.connect(gw.gateway.store.path)


async def test_an_idle_writer_lets_the_request_commit_its_own_rows() -> None:
    async with open_gateway() as gw:
        writer = gw.gateway.writer
        before = writer.own_commits
        sub = gw.gateway.hub.subscribe(("odds",), None, _no_filter())
        for price in (-110, -120, -130):
            await writer.submit_and_wait([_quote(price)], [], source="test")
        assert writer.own_commits == before + 3
        prices = [sub.receive.receive_nowait().payload["data"][0]["home_ml"] for _ in range(3)]
        assert prices == [-110, -120, -130]  # each published by the time its call returned


async def test_queued_rows_commit_before_a_later_request_of_its_own() -> None:
    """A feed's rows already handed to the writer (not yet committed) go first: the request
    that comes after them queues behind them instead of committing ahead. (Trio runs the
    writer or the sender first at random after a send, hence 20 rounds.)"""
    async with open_gateway() as gw:
        writer = gw.gateway.writer
        for i in range(20):
            await writer.submit_quotes([_quote(-150, event_id=f"e{i}")], source="feed")  # not yet committed
            await writer.submit_and_wait([_quote(-160, event_id=f"e{i}")], [], source="push")
        with _db(gw) as db:
            stored = dict(db.execute("SELECT event_id, price FROM quotes").fetchall())
        assert stored == {f"e{i}": -160 for i in range(20)}


async def test_concurrent_requests_and_a_feed_publish_in_id_order_and_store_everything() -> None:
    async with open_gateway() as gw:
        writer = gw.gateway.writer
        sub = gw.gateway.hub.subscribe(("odds",), None, _no_filter())

        async def request(i: int) -> None:
            for k in range(20):
                await writer.submit_and_wait([_quote(-100 - k, event_id=f"r{i}")], [], source="push")

        async def feed() -> None:
            for k in range(40):
                await writer.submit_quotes([_quote(-100 - k, event_id="feed")], source="feed")
                await trio.lowlevel.checkpoint()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(5):
                    nursery.start_soon(request, i)
                nursery.start_soon(feed)
            while writer._queued:  # the feed's last rows  # noqa: ASYNC110
                await trio.sleep(0.01)
        ids = [f.seq for f in _drain(sub)]
        # in id order; a group commit's quotes to one row make one frame, so at most one each
        assert ids == sorted(ids) and 5 < len(ids) <= 5 * 20 + 40
        assert writer.own_commits > 0
        with _db(gw) as db:
            stored = {r[0]: r[1] for r in db.execute("SELECT event_id, price FROM quotes")}
        assert stored == {**{f"r{i}": -119 for i in range(5)}, "feed": -139}


async def test_an_unchanged_event_is_not_rewritten() -> None:
    async with open_gateway() as gw:
        writer = gw.gateway.writer
        await writer.submit_and_wait([_quote(-110)], [], source="t")
        with _db(gw) as db:
            first = db.execute("SELECT updated_ms FROM events WHERE id = 'evt1'").fetchone()[0]
        await trio.sleep(0.01)
        await writer.submit_and_wait([_quote(-120)], [], source="t")
        with _db(gw) as db:
            assert db.execute("SELECT updated_ms FROM events WHERE id = 'evt1'").fetchone()[0] == first
        await writer.submit_and_wait([_quote(-130, commence_time="2031-05-13T01:00:00Z")], [], source="t")
        with _db(gw) as db:
            row = db.execute("SELECT commence_time_ms, updated_ms FROM events WHERE id = 'evt1'").fetchone()
        assert row[0] == 1_936_400_400_000 and row[1] > first  # a change of its details is stored


async def test_history_last_ms_is_rewritten_once_it_is_a_minute_behind(tmp_path: Any) -> None:
    store = Store(str(tmp_path / "h.db"))
    t = 1_900_000_000_000

    def history_row(ms: int, price: int) -> tuple[Any, ...]:
        return ("evt1", "pinnacle", "h2h", "home", "", None, ms, price)

    def last_ms() -> int:
        return int(store.read_sync(lambda c: c.execute("SELECT last_ms FROM history_events").fetchone()[0]))

    try:
        await store.write(WriteBatch(history=[history_row(t, -110)]))
        assert last_ms() == t
        await store.write(WriteBatch(history=[history_row(t + 1000, -120)]))
        assert last_ms() == t  # not yet a minute behind
        await store.write(WriteBatch(history=[history_row(t + LAST_MS_GRAIN, -130)]))
        assert last_ms() == t + LAST_MS_GRAIN
        changes = store.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM price_history").fetchone()[0])
        assert changes == 3  # every change is kept, whatever last_ms says
    finally:
        store.close()
    reopened = Store(str(tmp_path / "h.db"))  # what memory knows of last_ms comes from the file
    try:
        assert reopened.history._last_ms == {1: t + LAST_MS_GRAIN}
    finally:
        reopened.close()


async def test_commits_do_not_wake_the_webhook_worker_without_webhooks() -> None:
    async with open_gateway() as gw:
        worker = gw.gateway.webhooks
        assert worker is not None
        with trio.fail_after(5):
            while worker.hooks_active:  # its first pass finds none  # noqa: ASYNC110
                await trio.sleep(0.01)
        await gw.move("evt1", "pinnacle", "h2h", "home", -110, -150)  # a drop
        assert not worker._wake.is_set()
        worker.wake()  # what the API does when a webhook is created or changed
        assert worker.hooks_active and worker._wake.is_set()


def test_request_ids_are_unique_hex() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def _no_filter() -> Any:
    from gateway.core.filters import Filter

    return Filter()


def _drain(sub: Any) -> list[Any]:
    out = []
    while True:
        try:
            out.append(sub.receive.receive_nowait())
        except trio.WouldBlock:
            return out


def test_the_report_without_rejections_is_what_the_encoder_writes() -> None:
    from gateway.web.ingest_http import _body, _report

    for report in ({"accepted": 1, "rejected": [], "rejected_count": 0},
                   {"accepted": 50_000, "rejected": [], "rejected_count": 0},
                   {"accepted": 2, "rejected": [{"index": 1, "error": "price: missing"}], "rejected_count": 1}):
        assert _report(report) == _body(report)

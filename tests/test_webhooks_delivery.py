"""Webhook delivery end to end: a real gateway POSTing to a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from gateway.webhooks import worker
from gateway.webhooks.signing import verify

from .conftest import Running, make_config, start_gateway
from .helpers import push, quote

T = TypeVar("T")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST. `script` answers the next requests in order (an int status, or
    ("sleep", s) to hang); afterwards it answers `default`. Paths in `slow` always hang."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    default: int = 200
    slow: dict[str, float] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    most_active: dict[str, int] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path = scope["path"]
        if path in self.slow:
            action: Any = ("sleep", self.slow[path])
        else:
            action = self.script.pop(0) if self.script else self.default
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Received(path, headers, body, trio.current_time()))
        self._changed.set()
        self._changed = trio.Event()
        if isinstance(action, tuple):
            self.active[path] = self.active.get(path, 0) + 1
            self.most_active[path] = max(self.most_active.get(path, 0), self.active[path])
            try:
                await trio.sleep(action[1])
            finally:
                self.active[path] -= 1
            action = 200
        await send({"type": "http.response.start", "status": action, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait_for(self, n: int, path: str | None = None) -> list[Received]:
        while len(got := [r for r in self.requests if path is None or r.path == path]) < n:
            await self._changed.wait()
        return got

    async def serve(self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = HypercornConfig()
        cfg.bind = ["127.0.0.1:0"]
        cfg.accesslog = None
        cfg.graceful_timeout = 0.1
        await hypercorn_serve(self, cfg, task_status=task_status)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(worker, "RETRY_SCHEDULE_S", (0.0, 0.1, 0.25))
    monkeypatch.setattr(worker, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(worker, "MIN_PASS_INTERVAL_S", 0.01)
    yield


async def start_receiver(nursery: trio.Nursery, path: str = "/hook") -> Receiver:
    """A Receiver serving in `nursery`; its `url` ends with `path`."""
    r = Receiver()
    urls = await nursery.start(r.serve)
    r.url = urls[0] + path
    return r


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    return await start_receiver(nursery)


async def create_hook(c: httpx.AsyncClient, key: str, url: str, **fields: Any) -> dict[str, Any]:
    r = await c.post("/v1/webhooks", json={"url": url, **fields}, headers={"X-API-Key": key})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def deliveries(c: httpx.AsyncClient, key: str, hook_id: int) -> list[dict[str, Any]]:
    r = await c.get(f"/v1/webhooks/{hook_id}/deliveries", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["data"]
    return rows


async def until(get: Callable[[], Awaitable[T]], ok: Callable[[T], bool]) -> T:
    """Poll `get` until its value is `ok` (callers bound the wait with fail_after)."""
    while True:
        value = await get()
        if ok(value):
            return value
        await trio.sleep(0.02)


async def settled(c: httpx.AsyncClient, key: str, hook_id: int) -> list[dict[str, Any]]:
    """The deliveries, once there is one and none is pending."""
    return await until(lambda: deliveries(c, key, hook_id),
                       lambda rows: bool(rows) and all(r["status"] != "pending" for r in rows))


async def test_drop_is_delivered_signed(gateway: Running, receiver: Receiver) -> None:
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-120)])
            (req,) = await receiver.wait_for(1)
            rows = await settled(c, key, hook["id"])
    h, body = req.headers, req.json()
    t, _, sig = h["x-gateway-signature"].partition(",v1=")
    t = t.removeprefix("t=")
    expected = hmac.new(hook["secret"].encode(), f"{t}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig, expected)
    assert verify(hook["secret"], h["x-gateway-signature"], req.body, now=time.time())
    assert not verify("whsec_wrong", h["x-gateway-signature"], req.body, now=time.time())
    assert (h["x-gateway-attempt"], h["x-gateway-webhook-id"], h["x-gateway-event-type"]) == (
        "1", str(hook["id"]), "odds_drop")
    assert h["user-agent"] == "gateway-webhooks/0.1" and h["content-type"] == "application/json"
    assert body["id"] == h["x-gateway-delivery-id"] and body["event_type"] == "odds_drop"
    assert isinstance(body["timestamp_ms"], int)
    d = body["data"]
    assert (d["type"], d["bookmaker"], d["side"], d["prev"], d["new"], d["direction"]) == (
        "odds_drop", "pinnacle", "h2h_home", -110, -120, "toward_favorite")
    assert [(r["id"], r["status"], r["attempts"], r["last_status"]) for r in rows] == [
        (body["id"], "delivered", 1, 200)]


async def test_500s_are_retried_on_schedule(gateway: Running, receiver: Receiver) -> None:
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    receiver.script = [500, 503]
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-125)])
            reqs = await receiver.wait_for(3)
            rows = await settled(c, key, hook["id"])
    assert [r.headers["x-gateway-attempt"] for r in reqs] == ["1", "2", "3"]
    assert len({r.headers["x-gateway-delivery-id"] for r in reqs}) == 1
    assert reqs[0].body == reqs[1].body == reqs[2].body
    assert reqs[1].at - reqs[0].at >= 0.09 and reqs[2].at - reqs[1].at >= 0.24
    assert (rows[0]["status"], rows[0]["attempts"], rows[0]["last_status"], rows[0]["last_error"]) == (
        "delivered", 3, 200, None)


async def test_timeout_is_retried_and_a_final_failure_recorded(gateway: Running, receiver: Receiver) -> None:
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    receiver.script = [("sleep", 0.5), 500, 500]
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-125)])
            reqs = await receiver.wait_for(3)
            rows = await settled(c, key, hook["id"])
            after = (await c.get(f"/v1/webhooks/{hook['id']}", headers={"X-API-Key": key})).json()
    assert reqs[1].at - reqs[0].at >= 0.2 + 0.09  # waited for the 0.2 s timeout, then the backoff
    assert (rows[0]["status"], rows[0]["attempts"], rows[0]["last_error"]) == ("failed", 3, "HTTP 500")
    assert after["consecutive_failures"] == 1 and after["is_active"] is True


async def test_pending_retry_survives_a_restart(nursery: trio.Nursery, tmp_path: Path, receiver: Receiver,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "RETRY_SCHEDULE_S", (0.0, 0.5, 0.5))
    config = make_config(tmp_path)
    receiver.default = 500  # whatever the first gateway sends fails
    with trio.fail_after(8):
        first = await start_gateway(nursery, config)
        key, ingest = first.key("business"), first.key(scopes=("ingest",))
        async with first.client() as c:
            hook = await create_hook(c, key, receiver.url)
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-130)])
            await receiver.wait_for(1)
            await until(lambda: deliveries(c, key, hook["id"]), lambda rows: rows[0]["attempts"] == 1)
        first.stop.set()
        await first.done.wait()
        sent_before = len(receiver.requests)  # 1 (2 on a very slow machine); the retry is pending in the store
        receiver.default = 200
        second = await start_gateway(nursery, config)
        reqs = await receiver.wait_for(sent_before + 1)
        async with second.client() as c:
            rows = await settled(c, key, hook["id"])
        second.stop.set()
        await second.done.wait()
    assert sent_before < 3 and len(reqs) == sent_before + 1
    assert reqs[-1].headers["x-gateway-attempt"] == str(sent_before + 1)
    assert len({r.headers["x-gateway-delivery-id"] for r in reqs}) == 1
    assert (rows[0]["status"], rows[0]["attempts"]) == ("delivered", sent_before + 1)


async def test_auto_disabled_after_5_failed_deliveries(nursery: trio.Nursery, tmp_path: Path, receiver: Receiver,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "RETRY_SCHEDULE_S", (0.0,))  # one attempt: 5 drops = 5 failed deliveries
    receiver.default = 500
    gateway = await start_gateway(nursery, make_config(tmp_path))
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            hook_url = f"/v1/webhooks/{hook['id']}"
            await push(c, ingest, [quote(-110)])
            for price in (-120, -110, -120, -110, -120):  # 5 drops of 10 cents
                await push(c, ingest, [quote(price)])
            state = await until(lambda: c.get(hook_url, headers={"X-API-Key": key}),
                                lambda r: not r.json()["is_active"])
            await push(c, ingest, [quote(-110)])
            await trio.sleep(0.3)
            count = len(receiver.requests)  # disabled: the 6th drop is not sent
            r = await c.patch(hook_url, json={"is_active": True}, headers={"X-API-Key": key})
        gateway.stop.set()
        await gateway.done.wait()
    assert count == 5
    assert state.json()["consecutive_failures"] == 5
    assert "5 consecutive failed deliveries" in state.json()["disabled_reason"]
    assert r.json()["is_active"] is True and r.json()["consecutive_failures"] == 0
    assert r.json()["disabled_reason"] is None


async def test_a_delivery_finished_during_a_due_read_is_not_sent_again(
        gateway: Running, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The due query reads a snapshot; an attempt recorded while it runs must not look pending."""
    due_deliveries = worker.q.due_deliveries

    def slow_due(conn: Any, **kw: Any) -> Any:
        rows = due_deliveries(conn, **kw)
        time.sleep(0.3)  # in a worker thread: the snapshot ages while attempts finish
        return rows

    monkeypatch.setattr(worker.q, "due_deliveries", slow_due)
    receiver.script = [("sleep", 0.15)]  # the first POST is still in flight when the next pass reads
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    with trio.fail_after(8):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-120)])
            await receiver.wait_for(1)
            await push(c, ingest, [quote(-110)])  # wakes a pass whose snapshot still has drop 1 pending
            await receiver.wait_for(2)
            await settled(c, key, hook["id"])
            await trio.sleep(0.8)  # long enough for a stale pass to have sent drop 1 again
            rows = await settled(c, key, hook["id"])
    ids = [r.headers["x-gateway-delivery-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 2
    assert sorted(r["attempts"] for r in rows) == [1, 1]


async def test_filters_decide_what_is_delivered(gateway: Running, receiver: Receiver) -> None:
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    nhl = {"sport": "icehockey_nhl", "event": "2026-05-12_Rangers_Bruins"}
    with trio.fail_after(5):
        async with gateway.client() as c:
            await create_hook(c, key, receiver.url, sports="basketball_nba", threshold=15,
                              bookmakers=["pinnacle"], direction="toward_favorite")
            await push(c, ingest, [quote(-110), quote(-110, book="fanduel"), quote(-110, **nhl)])
            await push(c, ingest, [quote(-130, book="fanduel")])  # another book
            await push(c, ingest, [quote(-130, **nhl)])  # another sport
            await push(c, ingest, [quote(-120)])  # 10 cents: under the threshold
            await push(c, ingest, [quote(-100)])  # 20 cents toward the dog
            await push(c, ingest, [quote(-125)])  # 25 cents toward the favourite: delivered
            (req,) = await receiver.wait_for(1)
            await trio.sleep(0.2)
    assert len(receiver.requests) == 1
    d = req.json()["data"]
    assert (d["sport_key"], d["bookmaker"], d["prev"], d["new"]) == ("basketball_nba", "pinnacle", -100, -125)


async def test_slack_and_discord_bodies_are_readable(gateway: Running, receiver: Receiver) -> None:
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    with trio.fail_after(5):
        async with gateway.client() as c:
            slack = await create_hook(c, key, receiver.url, format="slack")
            discord = await create_hook(c, key, receiver.url, format="discord")
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-120)])
            reqs = await receiver.wait_for(2)
    by_hook = {r.headers["x-gateway-webhook-id"]: r for r in reqs}
    line = "pinnacle h2h_home -110 -> -120 (toward_favorite) Los Angeles Lakers vs Golden State Warriors"
    assert by_hook[str(slack["id"])].json() == {"text": line}
    assert by_hook[str(discord["id"])].json() == {"content": line}
    for hook in (slack, discord):  # still signed
        r = by_hook[str(hook["id"])]
        assert verify(hook["secret"], r.headers["x-gateway-signature"], r.body, now=time.time())


async def test_a_hanging_endpoint_does_not_delay_other_webhooks(nursery: trio.Nursery, tmp_path: Path,
                                                                receiver: Receiver,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "TIMEOUT_S", 10.0)
    gateway = await start_gateway(nursery, make_config(tmp_path))
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    base = receiver.url.removesuffix("/hook")
    receiver.slow["/slow"] = 5.0  # hangs for the whole test
    with trio.fail_after(5):
        async with gateway.client() as c:
            await create_hook(c, key, base + "/slow")
            await create_hook(c, key, base + "/fast")
            await push(c, ingest, [quote(-110)])
            for price in (-120, -110, -120, -110, -120, -110, -120, -110):  # 8 drops
                await push(c, ingest, [quote(price)])
            await receiver.wait_for(8, "/fast")
            slow = await receiver.wait_for(4, "/slow")
            await trio.sleep(0.1)
            hanging = receiver.active["/slow"]
        gateway.stop.set()
        await gateway.done.wait()
    # every fast delivery arrived while the slow webhook held its share (4) of the slots, no more
    assert hanging == 4 and receiver.most_active["/slow"] == 4 and len(slow) == 4

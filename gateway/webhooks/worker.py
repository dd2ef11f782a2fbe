"""The delivery worker: stream log -> matched deliveries (SQLite) -> signed POSTs with retries.

Persist first: drops are already in the stream log when the writer's `on_commit` hook runs,
so the hook only wakes this task (no queue to overflow, nothing to lose). The worker reads
the drops after its watermark, matches them against the active webhooks and stores one
pending delivery per match, advancing the watermark in the same transaction. Pending rows
are sent by nursery tasks, each holding a slot of a pool shared fairly by keys (shares.py:
`[webhooks] concurrency` in all, at most `per_key_concurrency` per key, at most
PER_WEBHOOK_CONCURRENCY per webhook, keys holding the fewest served first). `/test` takes a
slot of its key too. So a slow or dead endpoint never delays the streams or the writer, and
one key's dead endpoints delay only that key. A task starts only once it has its slot: a
backlog waits in SQLite, not in tasks. After a restart the worker continues from its
watermark and sends whatever is still pending.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

import httpx
import trio

from ..core.filters import Catalog, ParamError
from ..core.frames import DROP, STEAM, Frame
from ..store import Store
from ..writer import wall_ms
from . import queries as q
from .guard import USER_AGENT, Resolver, webhook_client
from .model import TEST_EVENT, Matcher, Webhook, matcher, render_body, sample_drop
from .shares import Shares, fair_order
from .signing import signature_header

logger = logging.getLogger(__name__)

RETRY_SCHEDULE_S: tuple[float, ...] = (0.0, 30.0, 300.0)  # delay before attempt 1, 2, 3
TIMEOUT_S = 10.0  # per attempt, connect to last header
CONCURRENCY = 20  # POSTs in flight, all keys (config: [webhooks] concurrency)
PER_KEY_CONCURRENCY = 5  # of which one key's ([webhooks] per_key_concurrency)
PER_WEBHOOK_CONCURRENCY = 4  # so one dead endpoint holds at most this many of its key's slots
TEST_WAIT_S = 5.0  # a /test waits this long for a slot of its key, then gets 429
DISABLE_AFTER = 5  # consecutive deliveries that failed every attempt
POLL_S = 5.0  # also look for due rows this often (rows the CLI wrote, clock drift)
MIN_PASS_INTERVAL_S = 0.05  # coalesce bursts of commits into one pass
READ_CHUNK = 1000
DUE_READ_LIMIT = 5000  # due rows looked at per pass (already bounded per webhook and per key)
RETENTION_MS = 7 * 24 * 3600 * 1000  # finished deliveries are listed this long
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float


async def post_once(client: httpx.AsyncClient, due: q.Due, *, timeout_s: float, now_s: float) -> Outcome:
    """One signed POST. 2xx is success; anything else (redirects too) or no answer is a failure."""
    t = int(now_s)
    headers = {
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "X-Gateway-Signature": signature_header(due.secret, t, due.body),
        "X-Gateway-Delivery-Id": due.id, "X-Gateway-Attempt": str(due.attempts + 1),
        "X-Gateway-Webhook-Id": str(due.webhook_id), "X-Gateway-Event-Type": due.event_type,
    }
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    with trio.move_on_after(timeout_s) as scope:  # a total deadline: httpx's is per read
        try:
            async with client.stream("POST", due.url, content=due.body.encode(), headers=headers,
                                     timeout=timeout_s, follow_redirects=False) as resp:
                status = resp.status_code
        except httpx.TimeoutException:
            error = f"timeout after {timeout_s:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a host httpx will not parse
            error = f"{type(exc).__name__}: {exc}"[:300]
    if scope.cancelled_caught:
        error = f"timeout after {timeout_s:g} s"
    ok = status is not None and 200 <= status < 300
    if status is not None and not ok:
        error = f"HTTP {status}"
    return Outcome(ok, status, error, (time.perf_counter() - started) * 1000)


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


async def send_test(store: Store, client: httpx.AsyncClient, hook: Webhook, *, timeout_s: float = TIMEOUT_S,
                    clock: Callable[[], int] = wall_ms) -> tuple[str, Outcome]:
    """Send one `test` event now (one attempt, no retry) and record it in the deliveries."""
    now = clock()
    did = new_delivery_id()
    body = render_body(hook.format, delivery_id=did, event_type=TEST_EVENT, timestamp_ms=now, data=sample_drop(now))
    due = q.Due(did, hook.id, TEST_EVENT, body, 0, hook.url, hook.secret, hook.key_id)
    outcome = await post_once(client, due, timeout_s=timeout_s, now_s=now / 1000)
    await store.write_fn(partial(q.record_test, due=due, created_ms=now, now=clock(), ok=outcome.ok,
                                 status=outcome.status, error=outcome.error))
    return did, outcome


class WebhookWorker:
    """Runs as one nursery task of the gateway; `on_commit` is the writer hook."""

    def __init__(self, store: Store, *, catalog: Callable[[], Catalog], tiers: Iterable[str],
                 client: httpx.AsyncClient | None = None, retry_schedule: Iterable[float] | None = None,
                 timeout_s: float | None = None, concurrency: int | None = None, per_key: int | None = None,
                 block_private: bool = False, resolver: Resolver | None = None,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.store = store
        self.catalog = catalog
        self.tiers = tuple(tiers)
        self.client = client
        self.block_private = block_private
        self.resolver = resolver
        self.retry_schedule = tuple(RETRY_SCHEDULE_S if retry_schedule is None else retry_schedule) or (0.0,)
        self.timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        self.clock = clock
        total = concurrency or CONCURRENCY
        self.shares = Shares(total, min(total, per_key or PER_KEY_CONCURRENCY))
        self._freed = trio.Event()  # set (and replaced) whenever a slot is given back
        self._per_hook: dict[int, int] = {}  # webhook id -> attempts in flight
        self._in_flight: set[str] = set()
        self._finished: set[str] = set()  # ids whose attempt ended since the current due read began
        self._matchers: dict[tuple[int, int, int], Matcher] = {}
        self._wake = trio.Event()
        self._persisted_at = 0.0
        self.hooks_active = True  # as of the last pass (True until one says otherwise)
        self.watermark = 0
        self.running = False
        self.delivered = self.failed_attempts = self.disabled = self.matched = 0

    # -- the writer hook (runs in the writer task: must be cheap) ----------------------------
    def on_commit(self, frames: list[Frame]) -> None:
        # without active webhooks a pass only moves the watermark: the POLL_S pass does that,
        # and finds webhooks the CLI added (a pass per commit cost three store reads)
        if self.hooks_active and any(f.stream == DROP or f.stream == STEAM for f in frames):
            self._wake.set()

    def wake(self) -> None:
        """A webhook was added or changed here (the API): look now."""
        self.hooks_active = True
        self._wake.set()

    # -- the task ------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with AsyncExitStack() as stack:
            if self.client is None:
                self.client = await stack.enter_async_context(webhook_client(block_private=self.block_private,
                                                                             resolver=self.resolver))
            client = self.client
            self.watermark = await self.store.write_fn(partial(q.start_position, tiers=self.tiers))
            async with trio.open_nursery() as nursery:
                self.running = True
                task_status.started()
                next_prune = trio.current_time()
                try:
                    while True:
                        self._wake = trio.Event()
                        wait_s = 1.0
                        try:
                            await self._match()
                            wait_s = await self._dispatch(nursery, client)
                            if trio.current_time() >= next_prune:
                                next_prune = trio.current_time() + PRUNE_EVERY_S
                                await self.store.write_fn(partial(q.prune_deliveries,
                                                                  before_ms=self.clock() - RETENTION_MS))
                        except Exception:
                            logger.exception("webhooks: a pass failed; retrying in 1 s")
                        with trio.move_on_after(wait_s):
                            await self._wake.wait()
                        await trio.sleep(MIN_PASS_INTERVAL_S)
                finally:
                    self.running = False

    async def _match(self) -> None:
        """Turn the drops after the watermark into pending deliveries (and move the watermark)."""
        while True:
            hooks, rows, last = await self.store.read(partial(q.new_drops, after=self.watermark, tiers=self.tiers,
                                                              limit=READ_CHUNK))
            self.hooks_active = bool(hooks)
            if not hooks:
                self.watermark = max(self.watermark, last)
                return
            now = self.clock()
            matchers = self._compile(hooks)
            first_at = now + int(self.retry_schedule[0] * 1000)
            new: list[q.NewDelivery] = []
            for row in rows:
                payload = json.loads(row.payload)
                frame = Frame(seq=row.seq, stream=row.stream, payload=payload, text=row.payload, live=row.live)
                for hook, m in matchers:
                    if m.matches(frame):
                        did = new_delivery_id()
                        kind = frame.type  # odds_drop, or steam (kinds=steam)
                        body = render_body(hook.format, delivery_id=did, event_type=kind, timestamp_ms=now,
                                           data=payload)
                        new.append(q.NewDelivery(did, hook.id, kind, row.seq, body, first_at))
            if new or (rows and time.monotonic() - self._persisted_at > 2.0):
                await self.store.write_fn(partial(q.insert_deliveries, rows=new, now=now, watermark=last))
                self._persisted_at = time.monotonic()
                self.matched += len(new)
            self.watermark = last
            if len(rows) < READ_CHUNK:
                return

    def _compile(self, hooks: list[Webhook]) -> list[tuple[Webhook, Matcher]]:
        out, cache = [], {}
        for hook in hooks:
            ck = (hook.id, hook.updated_ms, hook.after_seq)
            m = self._matchers.get(ck)
            if m is None:
                try:
                    m = matcher(hook, self.catalog())
                except ParamError as exc:
                    logger.warning("webhooks: webhook %d has unusable filters (%s); skipped", hook.id, exc)
                    continue
            cache[ck] = m
            out.append((hook, m))
        self._matchers = cache
        return out

    async def _dispatch(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> float:
        """Start a task per due delivery that can have a slot now; return how long the loop may sleep."""
        now = self.clock()
        if not self.shares.full:
            # The read is a snapshot: an attempt recorded while it runs still looks pending in
            # it, so ids that finished meanwhile are skipped (their wake brings another pass).
            self._finished.clear()
            # in-flight rows are still pending, so ask for twice the per-webhook/per-key share
            due = await self.store.read(partial(q.due_deliveries, now=now, per_webhook=2 * PER_WEBHOOK_CONCURRENCY,
                                                per_key=2 * self.shares.per_key, limit=DUE_READ_LIMIT))
            for d in fair_order(due, key=lambda d: d.key_id, held=self.shares.held):
                if self.shares.full:
                    break
                busy = self._per_hook.get(d.webhook_id, 0)
                if (d.id in self._in_flight or d.id in self._finished or busy >= PER_WEBHOOK_CONCURRENCY
                        or not self.shares.can_take(d.key_id)):
                    continue
                self.shares.take(d.key_id)
                self._in_flight.add(d.id)
                self._per_hook[d.webhook_id] = busy + 1
                nursery.start_soon(self._attempt, client, d)
        nxt = await self.store.read(partial(q.next_due_ms, after=now))
        if nxt is None:
            return POLL_S
        return max(0.0, min(POLL_S, (nxt - self.clock()) / 1000))

    def _give(self, key_id: int) -> None:
        self.shares.give(key_id)
        self._freed.set()
        self._freed = trio.Event()
        self._wake.set()

    async def test(self, hook: Webhook, *, wait_s: float | None = None) -> tuple[str, Outcome] | None:
        """A `/test` send under its key's share of the pool; None if no slot came within `wait_s`."""
        if not self.running or self.client is None:
            return None
        got = False
        with trio.move_on_after(TEST_WAIT_S if wait_s is None else wait_s):
            while not self.shares.can_take(hook.key_id):
                await self._freed.wait()
            self.shares.take(hook.key_id)  # no checkpoint after it: the scope cannot undo it
            got = True
        if not got:
            return None
        try:
            return await send_test(self.store, self.client, hook, timeout_s=self.timeout_s, clock=self.clock)
        finally:
            self._give(hook.key_id)

    async def _attempt(self, client: httpx.AsyncClient, due: q.Due) -> None:
        try:
            outcome = await post_once(client, due, timeout_s=self.timeout_s, now_s=self.clock() / 1000)
            attempt = due.attempts + 1
            retry = None
            if not outcome.ok and attempt < len(self.retry_schedule):
                retry = math.ceil(self.retry_schedule[attempt] * 1000)
            disabled = await self.store.write_fn(partial(
                q.record_attempt, due=due, ok=outcome.ok, status=outcome.status, error=outcome.error,
                now=self.clock(), retry_in_ms=retry, disable_after=DISABLE_AFTER))
            if outcome.ok:
                self.delivered += 1
            else:
                self.failed_attempts += 1
                logger.log(logging.DEBUG if retry is not None else logging.INFO,
                           "webhooks: delivery %s to webhook %d failed (attempt %d: %s)%s", due.id, due.webhook_id,
                           attempt, outcome.error, "; giving up" if retry is None else f"; retry in {retry} ms")
            if disabled:
                self.disabled += 1
                logger.warning("webhooks: webhook %d disabled after %d consecutive failed deliveries",
                               due.webhook_id, DISABLE_AFTER)
        except Exception:
            logger.exception("webhooks: delivery %s could not be recorded", due.id)
        finally:
            self._in_flight.discard(due.id)
            self._finished.add(due.id)
            left = self._per_hook.pop(due.webhook_id, 1) - 1
            if left > 0:
                self._per_hook[due.webhook_id] = left
            self._give(due.key_id)

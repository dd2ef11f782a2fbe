"""Per-key connection caps across every edge: counts in Redis, leases that expire.

Each edge keeps its own slots exactly as one process does (auth.ConnectionCaps: released in
`finally`, however a stream ends) and tells Redis its count per key, `gw:caps:<key id>` ->
{edge: count}. A stream is admitted if the edge's new count plus every other edge's count
stays within the tier's limit (the ACQUIRE script, atomic in Redis). Counts belong to this
run of the edge (`<edge_id>.<random>`), whose lease `gw:lease:<that>` is renewed every
lease_s / 3; when an edge dies, its lease expires within lease_s and its counts stop
counting (the script drops them), and a restarted edge starts with new counts.

Releases and renewals go through one task, in order, so Redis's count of this edge is
always one this edge had; a renewal writes every count again, which repairs whatever a
lost connection left. While Redis is unreachable an edge admits streams by its own count
only (the cap then holds per edge, not across them), and Redis learns the counts at the
next renewal.
"""

from __future__ import annotations

import logging
import secrets
from functools import partial

import trio

from ..auth import ConnectionCaps, Slot
from ..config import ClusterConfig
from . import link

logger = logging.getLogger("gateway.cluster")


class ClusterCaps(ConnectionCaps):
    def __init__(self, cfg: ClusterConfig, edge_id: str) -> None:
        super().__init__()
        self.me = f"{edge_id}.{secrets.token_hex(4)}"
        self.lease_ms = int(cfg.lease_s * 1000)
        self.r = link.client(cfg.redis_url)
        self._acquire = self.r.register_script(link.ACQUIRE)
        self._send, self._receive = trio.open_memory_channel[int](100_000)  # keys whose count fell
        # Redis sees this edge's counts in the order they changed here: one call at a time
        self._order = trio.Lock()
        self.dirty: set[int] = set()  # keys whose count Redis may not have (a lost release)
        self.redis_ok = True
        self.refused_by_others = 0  # refusals because of other edges' streams

    async def acquire(self, key_id: int, limit: int, tier: str = "", needs: str = "odds") -> Slot | None:
        slot = self.try_acquire(key_id, limit, tier, needs)  # this edge's own count first (and its reservation)
        if slot is None or not self.redis_ok:
            return slot  # Redis unreachable: this edge's count decides (see the docstring)
        try:
            async with self._order:
                args = [self.me, self.count(key_id), limit, link.lease_key(""), self.lease_ms * 2]
                taken = await link.call(lambda: self._acquire(keys=[link.caps_key(key_id)], args=args))
        except link.errors() as exc:
            self._down(exc)
            self.dirty.add(key_id)
            return slot
        except BaseException:  # the client left meanwhile (cancelled): the reservation goes
            slot.release()
            raise
        if taken != 1:
            slot.release()
            self.rejections += 1
            self.refused_by_others += 1
            return None
        return slot

    def _release(self, slot: Slot) -> None:
        super()._release(slot)
        try:
            self._send.send_nowait(slot.key_id)
        except trio.WouldBlock:
            self.dirty.add(slot.key_id)  # the next renewal writes it

    def _down(self, exc: BaseException) -> None:
        if self.redis_ok:
            logger.warning("cluster caps: Redis is unreachable (%s): caps count this edge's streams only "
                           "until it answers", exc)
        self.redis_ok = False

    # -- the task: releases, and the lease with every count every lease_s / 3 ------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        renew_s = self.lease_ms / 3000
        next_renewal = trio.current_time()
        while True:
            keys: set[int] = set()
            with trio.move_on_at(next_renewal):
                keys.add(await self._receive.receive())
                while True:
                    try:
                        keys.add(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
            renew = trio.current_time() >= next_renewal
            if renew:
                next_renewal = trio.current_time() + renew_s
                keys.update(self.slots, self.dirty)
                self.dirty.clear()
            elif not self.redis_ok:
                self.dirty.update(keys)  # written at the next renewal, which also sees whether Redis is back
                continue
            async with self._order:
                counts = {k: self.count(k) for k in keys}  # now, in order with the acquires
                try:
                    await link.call(partial(self._write, counts, renew))
                except link.errors() as exc:
                    self._down(exc)
                    self.dirty.update(keys)
                    continue
            if not self.redis_ok:
                logger.warning("cluster caps: Redis answers again; caps count every edge's streams")
            self.redis_ok = True

    def _write(self, counts: dict[int, int], renew: bool) -> None:
        with self.r.pipeline(transaction=False) as p:
            if renew:
                p.set(link.lease_key(self.me), "1", px=self.lease_ms)
            for key_id, count in counts.items():
                key = link.caps_key(key_id)
                if count:
                    p.hset(key, self.me, count)
                    p.pexpire(key, self.lease_ms * 2)
                else:
                    p.hdel(key, self.me)
            p.execute()

    def close(self) -> None:
        """At shutdown: this edge's counts go at once (its streams have ended)."""
        try:
            self.r.delete(link.lease_key(self.me))
        except link.errors():
            pass

"""Keys change under open streams: a revoked key, or a tier without a stream, ends them.

Once a second, the keys that hold stream slots are read back from the store (keys are
revoked or moved between tiers by the CLI, beside the running gateway, or by another
process), and every stream whose key may no longer hold it is ended with a final frame
(`error: key_revoked` or `tier_required`; WebSocket close 4001) and its slot freed.
The key cache forgets them at once, so REST answers 401 too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from .auth import verdict

if TYPE_CHECKING:
    from .handle import Gateway

logger = logging.getLogger(__name__)

INTERVAL_S = 1.0


async def watch_keys(gw: Gateway, interval_s: float = INTERVAL_S) -> None:
    while True:
        await trio.sleep(interval_s)
        ids = list(gw.caps.slots)
        if not ids:
            continue
        try:
            states = await gw.view.key_states(ids)  # the store, or the keys mirrored to a cluster edge
        except Exception as exc:  # the store is failing: the writer reports it; try again
            logger.warning("key watch: could not read keys: %s", exc)
            continue
        for key_id in ids:
            for slot in list(gw.caps.slots.get(key_id, ())):
                reason = verdict(slot, states.get(key_id), gw.config.tiers)
                if reason is not None:
                    logger.info("ending a stream of key %d: %s", key_id, reason)
                    gw.key_cache.clear()
                    slot.end(reason)

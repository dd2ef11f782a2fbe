"""The conflation task: hands out the frames conflated groups held, when their window is due.

Conflated subscribers (`conflate_ms` on the odds stream and in WebSocket subscribe messages)
share groups in the hub like any other (same streams, sports and filter, the window being
part of the filter); the hub holds each such group's frames in a `Conflator` (the latest per
row or market state) instead of delivering them. This task sleeps until the earliest group
is due (or until a group starts holding), then `Hub.flush_conflated` delivers what is due
through the same path as any publish: direct socket writes, or the subscriber's channel.
A group is due at once after a quiet window (the first frame after a pause goes out
without waiting) and then at most once per window. One task for the process; without
conflated clients it waits on an event and costs nothing.
"""

from __future__ import annotations

import math

import trio

from .hub import Hub


async def run_conflation(hub: Hub) -> None:
    while True:
        due = hub.conflation_due()
        hub.conflation_wakeup = trio.Event()
        if due is None or due > trio.current_time():
            with trio.move_on_at(math.inf if due is None else due):
                await hub.conflation_wakeup.wait()
        hub.flush_conflated(trio.current_time())

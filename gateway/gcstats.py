"""How long the garbage collector stops the process, per generation (for /metrics).

A full pass walks every tracked object: with thousands of streams it is what sets the
tail of every delivery. `gateway serve` installs this (it changes the whole interpreter);
`gateway.testing` does not.
"""

from __future__ import annotations

import gc
import time
from typing import Any

BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class GcPauses:
    """Per generation: passes, and their cost as CPU time of the collecting thread (what the
    collector itself costs; on a busy machine the wall time of a pass also holds the time
    the OS ran other processes meanwhile, kept apart as `longest_wall`)."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self.longest_wall = [0.0, 0.0, 0.0]
        self.total = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.buckets = [[0] * (len(BUCKETS_S) + 1) for _ in range(3)]
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = (time.thread_time(), time.perf_counter())
            return
        pause = time.thread_time() - self._started[0]
        wall, gen = time.perf_counter() - self._started[1], min(2, int(info.get("generation", 0)))
        self.count[gen] += 1
        self.total[gen] += pause
        self.longest[gen] = max(self.longest[gen], pause)
        self.longest_wall[gen] = max(self.longest_wall[gen], wall)
        self.buckets[gen][sum(1 for b in BUCKETS_S if pause > b)] += 1


PAUSES: GcPauses | None = None


def install() -> GcPauses:
    global PAUSES
    if PAUSES is None:
        PAUSES = GcPauses()
        gc.callbacks.append(PAUSES)
    return PAUSES

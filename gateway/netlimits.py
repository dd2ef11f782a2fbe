"""What one connection may hold before it has a whole request, and the counters of what
was cut. Read by the patched Hypercorn server (web/hypercorn_patches.py), one per server."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Limits:
    """Per-server settings and state, attached to Hypercorn's config as `config.gateway`."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_pending: int = 512
    ws_idle_timeout_s: float | None = 30.0
    pending: OrderedDict[Any, float] = field(default_factory=OrderedDict)
    evicted: int = 0
    timed_out: int = 0
    contained: int = 0

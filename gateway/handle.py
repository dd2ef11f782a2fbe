"""The running gateway's shared handle: what every layer may need, built by `app.py`.

Its own module so that the layers point one way (core <- store/hub/auth <- writer/streaming
<- web <- app): the web layer reads the handle here and never imports the composition root.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
from quart import current_app

from .auth import ConnectionCaps, KeyCache, RateLimiter
from .config import Config
from .core.board import Board
from .core.ingest_limit import IngestLimiter
from .hub import Hub
from .netlimits import Limits
from .store import Store
from .universe import Universe
from .view import View
from .webhooks.worker import WebhookWorker
from .writer import Writer


@dataclass
class Gateway:
    """Everything a request handler may need; attached to the Quart app."""

    config: Config
    store: Store
    hub: Hub
    writer: Writer
    universe: Universe
    board: Board
    caps: ConnectionCaps = field(default_factory=ConnectionCaps)
    key_cache: KeyCache = field(default_factory=KeyCache)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    ingest_limiter: IngestLimiter = field(default_factory=IngestLimiter)  # ingest's own limit (issue 19)
    session_secret: bytes = b""
    webhooks: WebhookWorker | None = None  # webhook delivery (issue 7); set by serve()
    shutting_down: bool = False
    shutdown_started: trio.Event = field(default_factory=trio.Event)  # with shutting_down: ingest sockets wait on it
    stopped: trio.Event = field(default_factory=trio.Event)
    # live SSE streams that left Hypercorn (web/detached.py) run here; set by serve()
    detached: trio.Nursery | None = None
    detached_open: int = 0
    detached_gone: trio.Event = field(default_factory=trio.Event)
    ingest_kept: int = 0  # keep-alive ingest connections served without Hypercorn (ingest_keepalive.py)
    ingest_kept_total: int = 0
    # resumes replay one page at a time across the process (streaming.py)
    replay_slots: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))
    limits: Limits | None = None  # per-server connection limits and their counters (hypercorn_patches.py)
    # what streams and REST read (view.py): the store here, Redis on a cluster edge
    view: View = field(init=False)
    role: str = "single"  # or a cluster's "writer" / "edge" (gateway/cluster/)
    cluster: Any = None  # the cluster's Redis mirror (writer) or follower (edge), for /readyz and /metrics

    def __post_init__(self) -> None:
        self.view = View(self.store, self.writer)


def current_gateway() -> Gateway:
    gw: Gateway = current_app.config["GATEWAY"]
    return gw

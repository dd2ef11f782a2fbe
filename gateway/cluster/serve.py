"""Wiring for `gateway serve --role writer|edge` (called by app.serve, which runs the HTTP side
the same way for every role)."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Any

import trio

from ..config import ClusterConfig, Config, redacted_url
from ..core.board import Board
from ..hub import Hub
from ..startup import StartupError
from ..store import Store
from ..universe import Universe
from ..writer import Writer
from . import link

if TYPE_CHECKING:
    from ..app import Gateway
    from .mirror import Mirror

logger = logging.getLogger("gateway.cluster")


def role_of(config: Config) -> str:
    """"single" without [cluster]; else the role [cluster] or `--role` gave (one line if none)."""
    if config.cluster is None:
        return "single"
    if not config.cluster.role:
        raise StartupError('[cluster] needs a role for this process: pass --role writer or --role edge '
                           '(or set role = "writer" / "edge" in [cluster])')
    return config.cluster.role


class NoStore(Store):
    """An edge opens no database: its board, keys and log come from Redis. Anything that would
    use a store on an edge is a bug, and fails loudly instead of reading an empty one."""

    def __init__(self) -> None:  # no super().__init__: nothing is opened
        self.path = ""
        self.open = False

    def close(self) -> None:
        pass

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a cluster edge has no database (this is the writer's)")

    read = write = write_fn = write_fn_sync = write_fn_own_connection = read_sync = checkpoint = delete_log = _refuse


def edge_id(cfg: ClusterConfig) -> str:
    return cfg.edge_id or f"{socket.gethostname()}-{os.getpid()}"


async def open_edge(config: Config) -> Gateway:
    """An edge's gateway, once it has the cluster's state from Redis (it waits for Redis and
    for the writer to set it up, saying so every 30 s; a Redis that refuses it is one line)."""
    from ..app import Gateway
    from .caps import ClusterCaps
    from .edge_view import EdgeView
    from .follower import Follower

    cfg = config.cluster
    assert cfg is not None
    link.need_client()
    me = edge_id(cfg)
    store = NoStore()
    universe, board, hub = Universe.from_config(config), Board(), Hub(config.streams.subscriber_buffer)
    writer = Writer(store, hub, universe, board=board, next_seq=1)  # never runs: an edge takes no ingest
    gw = Gateway(config=config, store=store, hub=hub, writer=writer, universe=universe, board=board,
                 caps=ClusterCaps(cfg, me), role="edge")
    follower = Follower(gw, cfg, me)
    gw.cluster = follower
    gw.view = EdgeView(gw, follower)
    await follower.bootstrap()
    logger.info("cluster edge %s: following Redis from id %d (board of %d rows)", me, follower.cursor, len(board))
    return gw


async def run_edge(gw: Gateway, nursery: trio.Nursery) -> None:
    from .caps import ClusterCaps

    await nursery.start(gw.cluster.run)
    assert isinstance(gw.caps, ClusterCaps)
    await nursery.start(gw.caps.run)


def attach_mirror(gw: Gateway) -> Mirror:
    """The writer's Redis mirror, hooked after each commit; the cluster's lock taken (a second
    writer refuses to start). Redis may be down: the writer starts and catches it up later."""
    from .mirror import Mirror

    cfg = gw.config.cluster
    assert cfg is not None
    link.need_client()
    mirror = Mirror(gw, cfg)
    try:
        mirror.take_lock()
    except link.auth_errors() as exc:
        raise StartupError(f"Redis at {redacted_url(cfg.redis_url)} refused this client: {exc}: check "
                           "[cluster] redis_url") from None
    except link.errors() as exc:
        logger.warning("cluster writer: Redis at %s is unreachable (%s): starting anyway; Redis is caught up "
                       "from the store when it answers", redacted_url(cfg.redis_url), exc)
    gw.cluster = mirror
    gw.role = "writer"
    gw.writer.on_batch.append(mirror.on_batch)
    return mirror


def close(gw: Gateway) -> None:
    from .caps import ClusterCaps
    from .mirror import Mirror

    if isinstance(gw.cluster, Mirror):
        gw.cluster.release_lock()
    if isinstance(gw.caps, ClusterCaps):
        gw.caps.close()

"""Supervision: every configured feed runs as a nursery task that restarts when it fails.

A crash (or an upstream that keeps failing) is logged and retried with capped exponential
backoff plus jitter; it never takes the process down. The source shows as stale in
source-health meanwhile, because nothing new arrives from it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..config import Config, FeedConfig
from .base import Sink

logger = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 60.0
HEALTHY_AFTER_S = 60.0  # a run this long resets the backoff ladder


FeedFn = Callable[[FeedConfig, Sink], Awaitable[None]]


def feed_function(feed: FeedConfig) -> FeedFn:
    if feed.type == "simulator":
        from .simulator import run_simulator

        return run_simulator
    if feed.type == "replay":
        from .replay import run_replay

        return run_replay
    raise NotImplementedError(f"feed type {feed.type!r} is not available in this build")


async def supervise(feed: FeedConfig, sink: Sink, fn: FeedFn, *, rng: random.Random | None = None) -> None:
    """Run `fn` forever; restart it after a crash or an unexpected return."""
    rng = rng or random.Random()
    delay = BACKOFF_START_S
    while True:
        started = trio.current_time()
        try:
            await fn(feed, sink)
            if feed.type == "replay" and not feed.loop:
                logger.info("feed %s: recording finished", feed.source)
                return
            logger.warning("feed %s returned; restarting", feed.source)
        except Exception:
            logger.exception("feed %s crashed; restarting in about %.0f s", feed.source, delay)
        if trio.current_time() - started > HEALTHY_AFTER_S:
            delay = BACKOFF_START_S
        await trio.sleep(delay * (0.5 + rng.random()))  # jitter: feeds do not retry in lockstep
        delay = min(BACKOFF_CAP_S, delay * 2)


async def run_feeds(config: Config, sink: Sink) -> None:
    async with trio.open_nursery() as nursery:
        for feed in config.feeds:
            if feed.path and not Path(feed.path).is_absolute():  # relative to the config file
                feed = dataclasses.replace(feed, path=str(config.base_dir / feed.path))
            try:
                fn = feed_function(feed)
            except NotImplementedError as exc:
                logger.error("%s", exc)
                continue
            nursery.start_soon(supervise, feed, sink, fn)

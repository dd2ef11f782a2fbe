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
from ..core.sources import PlaySelector
from .base import Sink

logger = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 60.0
HEALTHY_AFTER_S = 60.0  # a run this long resets the backoff ladder


FeedFn = Callable[[FeedConfig, Sink], Awaitable[None]]
Progress = Callable[[int, int], None]

# replay progress callbacks by feed source name (the CLI's `gateway replay` progress bar)
_REPLAY_PROGRESS: dict[str, Progress] = {}


def set_replay_progress(source: str, progress: Progress | None) -> None:
    """Have the replay feed named `source` report (batches done, total) to `progress`."""
    if progress is None:
        _REPLAY_PROGRESS.pop(source, None)
    else:
        _REPLAY_PROGRESS[source] = progress


def feed_function(feed: FeedConfig) -> FeedFn:
    if feed.type == "simulator":
        from .simulator import run_simulator

        return run_simulator
    if feed.type == "replay":
        from .replay import run_replay

        progress = _REPLAY_PROGRESS.get(feed.source)
        if progress is None:
            return run_replay

        async def replay_with_progress(f: FeedConfig, sink: Sink) -> None:
            await run_replay(f, sink, progress=progress)

        return replay_with_progress
    if feed.type == "the_odds_api":
        from .the_odds_api import run_the_odds_api

        return run_the_odds_api
    if feed.type == "nba_live":
        from .nba_live import nba_live_feed

        return nba_live_feed()  # one set of per-game cursors across restarts: no play sent twice
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


_FEED_STALE_DEFAULT = next(f.default for f in dataclasses.fields(FeedConfig) if f.name == "stale_after_s")


def configure_play_selector(config: Config, sink: Sink) -> None:
    """Tell the writer's PlaySelector (if the sink has one) how long a primary may be silent:
    `[sources] stale_after_s`, or a primary feed's own `stale_after_s` where it sets another value."""
    selector = getattr(sink, "play_selector", None)
    if not isinstance(selector, PlaySelector):
        return
    selector.stale_after_ms = int(config.sources.stale_after_s * 1000)
    for feed in config.feeds:
        if feed.role == "primary" and feed.stale_after_s != _FEED_STALE_DEFAULT:
            selector.set_stale_after(feed.source, int(feed.stale_after_s * 1000))


async def run_feeds(config: Config, sink: Sink) -> None:
    configure_play_selector(config, sink)
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

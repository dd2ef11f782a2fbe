"""Wiring (the composition root): the one place that builds the store, hub, writer, feeds and web app and runs them.

`serve(config, task_status=...)` runs everything in one Trio process and reports the bound
URL once the gateway accepts connections, so the CLI, tests and `gateway.testing` share it.
Shutdown: stop accepting, end every stream with a final frame, flush the writer, exit.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from .config import Config
from .conflation import run_conflation
from .core.board import Board
from .core.drops import DropDetector
from .core.model import Quote
from .core.steam import SteamDetector
from .feeds.runner import run_feeds
from .handle import Gateway, current_gateway
from .hub import SHUTDOWN, Hub
from .key_watch import watch_keys
from .netlimits import Limits
from .ownership import Ownership
from .retention import prune_forever
from .startup import find_exception, listen_error, preflight
from .store import Store, final_match_ids, max_seq, open_matches
from .universe import Universe
from .web.ws_detached import MAX_MESSAGE_BYTES
from .webhooks.worker import WebhookWorker
from .writer import Writer, wall_ms

__all__ = ["Gateway", "create_app", "current_gateway", "open_gateway", "serve"]  # Gateway: handle.py

logger = logging.getLogger(__name__)


def load_board(conn: sqlite3.Connection, board: Board) -> None:
    """Rebuild the in-memory board from the stored current prices."""
    rows = conn.execute(
        "SELECT q.event_id, e.sport_key, e.home_team, e.away_team, e.commence_time_ms, q.bookmaker, "
        "q.market_key, q.outcome, q.price, q.point, q.player, q.observed_ms, q.status "
        "FROM quotes q JOIN events e ON e.id = q.event_id"
    )
    for r in rows:
        board.apply(Quote(r[1], r[0], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10] or None, r[11], r[12]))


def open_gateway(config: Config, *, clock: Callable[[], int] = wall_ms) -> Gateway:
    store = Store(config.db_path(), inline_max_rows=config.database.inline_commit_rows)
    universe = Universe.from_config(config)
    board = Board()

    finals: set[str] = set()

    def init(conn: sqlite3.Connection) -> int:
        universe.seed(conn)
        universe.load(conn)
        load_board(conn, board)
        finals.update(final_match_ids(conn))
        return max_seq(conn)

    last = store.write_fn_sync(init)
    hub = Hub(config.streams.subscriber_buffer)
    writer = Writer(store, hub, universe, board=board, next_seq=last + 1,
                    batch_ms=config.streams.writer_batch_ms, max_batch_rows=config.streams.max_batch_rows,
                    clock=clock, stale_after_s=config.sources.stale_after_s,
                    steam=SteamDetector(books=config.steam.books, threshold=config.steam.threshold,
                                        window_ms=int(config.steam.window_s * 1000)))
    writer.detector = baselines(board, universe)  # baselines survive a restart: no drop is missed or invented
    writer.final_matches.update(finals)  # games that ended before a restart are not in play after it

    async def reload() -> None:  # after a failed commit: the store is the truth
        def rebuild(conn: sqlite3.Connection) -> tuple[Board, DropDetector, int]:
            fresh = Board()
            load_board(conn, fresh)
            return fresh, baselines(fresh, universe), max_seq(conn)

        writer.resync(*await store.read(rebuild))

    writer.reload = reload
    secret = config.server.session_secret.encode() or store.write_fn_sync(stored_session_secret)
    return Gateway(config=config, store=store, hub=hub, writer=writer, universe=universe, board=board,
                   session_secret=secret)


def stored_session_secret(conn: sqlite3.Connection) -> bytes:
    """A random secret kept in the store, so dashboard sessions survive a restart."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'session_secret'").fetchone()
    if row is not None:
        return bytes.fromhex(row[0])
    secret = secrets.token_bytes(32)
    conn.execute("INSERT INTO meta (key, value) VALUES ('session_secret', ?)", (secret.hex(),))
    return secret


def baselines(board: Board, universe: Universe) -> DropDetector:
    """A drop detector whose baselines are the board's prices."""
    detector = DropDetector(universe.coverage)
    for key in board.row_keys():
        for q in board.quotes(key):
            detector.observe(q)
    return detector


def create_app(gw: Gateway) -> QuartTrio:
    from .web import apidocs, dashboard, errors, history, hypercorn_patches, rest, session, webhooks

    app = QuartTrio("gateway")
    app.config["GATEWAY"] = gw
    app.config["RESPONSE_TIMEOUT"] = None  # streams are endless; Quart's default cuts them at 60 s
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = gw.config.server.max_body_bytes
    errors.install(app)
    hypercorn_patches.install()
    for module in (rest, session, dashboard, webhooks, apidocs, history):  # ingest and streams: streams_asgi.py
        app.register_blueprint(module.bp)
    return app


def _webhooks(gw: Gateway) -> WebhookWorker:
    """Webhooks (issue 7): tiers with odds streams (business+) may use them; the writer wakes the worker."""
    config = gw.config
    return WebhookWorker(gw.store, catalog=gw.universe.catalog,
                         tiers=[name for name, t in config.tiers.items() if t.odds_streams],
                         concurrency=config.webhooks.concurrency, per_key=config.webhooks.per_key_concurrency,
                         block_private=config.webhooks.block_private_addresses)


async def _end_abandoned_simulations(gw: Gateway) -> None:
    """End the games a previous run's simulator left in play (see simulator.abandoned_plays)."""
    from .feeds.simulator import abandoned_plays

    for source in dict.fromkeys(f.source for f in gw.config.feeds if f.type == "simulator"):
        rows = await gw.store.read(partial(open_matches, sources=[source]))
        if rows:
            await gw.writer.submit_and_wait([], abandoned_plays(rows, source=source, now_ms=wall_ms()), source=source)
            logger.info("ended %d simulated games the previous run left in play", len(rows))


async def _checkpoint_forever(gw: Gateway) -> None:
    failing = False
    while True:
        await trio.sleep(gw.config.database.checkpoint_interval_s)
        try:
            await gw.store.checkpoint()
        except Exception as exc:
            if not failing:
                logger.warning("WAL checkpoint failed (retrying every %g s): %s",
                               gw.config.database.checkpoint_interval_s, exc)
            failing = True
        else:
            failing = False


async def serve(
    config: Config,
    *,
    feeds: bool = True,
    shutdown: trio.Event | None = None,
    record_path: Path | None = None,
    clock: Callable[[], int] = wall_ms,
    ready: Callable[[Gateway], None] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until cancelled or until `shutdown` is set; report the base URL.

    Start-up order (issue 13): check what can be checked without writing (startup.py, TLS
    files), own the database (ownership.py) before anything writes to it, open it, then
    listen; a problem on the way is a StartupError with one line. The lock goes after the
    store closes.
    """
    from .tls import tls_files

    tls = tls_files(config)  # before anything is opened: a bad cert or key is a ConfigError
    cluster: Any = None  # gateway/cluster/serve.py, imported only with [cluster] (it imports redis)
    if config.cluster is not None:
        from .cluster import serve as cluster
    role = cluster.role_of(config) if cluster else "single"
    ownership: Ownership | None = None
    if role == "edge":  # no database, no feeds, no ingest: the cluster's state comes from Redis
        gw = await cluster.open_edge(config)
    else:
        preflight(config, feeds=feeds)
        ownership = Ownership(config.db_path())
        ownership.acquire()
        try:
            gw = open_gateway(config, clock=clock)
        except BaseException:
            ownership.release()
            raise
        if role == "writer":  # every commit also goes to Redis (gateway/cluster/mirror.py)
            try:
                cluster.attach_mirror(gw)  # one writer per cluster: a second one stops here
            except BaseException:
                gw.store.close()
                ownership.release()
                raise
        gw.webhooks = _webhooks(gw)
        gw.writer.on_commit.append(gw.webhooks.on_commit)
    if ready is not None:
        ready(gw)
    if record_path is not None:
        from .feeds.replay import Recorder

        gw.writer.recorder = Recorder(record_path)
    app = create_app(gw)
    hc = HypercornConfig()
    hc.bind = [f"{config.server.host}:{config.server.port}"]
    hc.graceful_timeout = config.server.graceful_timeout_s
    hc.accesslog = None  # our own access log redacts keys (web/errors.py)
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = 75
    hc.websocket_ping_interval = config.streams.ws_ping_interval_s
    hc.websocket_max_message_size = MAX_MESSAGE_BYTES  # Hypercorn's default is 16 MiB, before any key is checked
    gw.limits = Limits(header_timeout_s=config.server.header_timeout_s, body_timeout_s=config.server.body_timeout_s,
                       max_pending=config.server.max_pending_connections,
                       ws_idle_timeout_s=config.streams.ws_idle_timeout_s)
    hc.gateway = gw.limits  # type: ignore[attr-defined]  # read by the patched server (hypercorn_patches.py)
    if tls is not None:  # https and wss served by Hypercorn (README "TLS without a proxy")
        hc.certfile, hc.keyfile = tls
    stop = shutdown if shutdown is not None else trio.Event()

    async def shutdown_trigger() -> None:
        await stop.wait()
        gw.shutting_down = True
        gw.shutdown_started.set()
        gw.hub.close_all(SHUTDOWN)  # every stream writes its final frame and ends
        await trio.sleep(0.05)

    try:
        async with trio.open_nursery() as nursery:

            async def http(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
                from .web.proxies import behind_proxies
                from .web.streams_asgi import StreamsApp  # SSE routes below Quart (see its docstring)

                asgi = behind_proxies(StreamsApp(gw, app), config.server.trusted_proxies)
                await hypercorn_serve(asgi, hc, shutdown_trigger=shutdown_trigger, task_status=task_status)
                with trio.move_on_after(config.server.graceful_timeout_s):  # detached streams' final frames
                    while gw.detached_open:
                        gw.detached_gone = trio.Event()
                        await gw.detached_gone.wait()
                nursery.cancel_scope.cancel()  # hypercorn has drained: stop feeds and writer

            gw.detached = nursery
            if role == "edge":
                await cluster.run_edge(gw, nursery)  # follows Redis: board, keys, frames to the hub
            else:
                await nursery.start(gw.writer.run)
                await _end_abandoned_simulations(gw)
                assert gw.webhooks is not None
                await nursery.start(gw.webhooks.run)  # webhooks (issue 7)
                nursery.start_soon(prune_forever, gw)  # by age, by size; the disk-space warning
                nursery.start_soon(_checkpoint_forever, gw)
                if feeds:
                    nursery.start_soon(run_feeds, config, gw.writer)
                if role == "writer":
                    await nursery.start(gw.cluster.run)
            nursery.start_soon(run_conflation, gw.hub)  # conflate_ms streams (issue 15.4)
            nursery.start_soon(watch_keys, gw)
            try:
                urls = await nursery.start(http)
            except BaseException as exc:  # the port is taken, the host is not ours, a TLS file...
                failed = find_exception(exc, (OSError,))
                if not isinstance(failed, OSError):
                    raise
                raise listen_error(failed, config.server.host, config.server.port) from exc
            if ownership is not None:
                ownership.announce(urls[0])
            if role == "writer":
                await gw.cluster.announce(urls[0])
            task_status.started(urls[0])
        with trio.CancelScope(shield=True):
            await gw.writer.flush()
            if role == "writer":
                await gw.cluster.flush()
    finally:
        gw.stopped.set()
        gw.store.close()
        if cluster:
            cluster.close(gw)
        if ownership is not None:
            ownership.release()

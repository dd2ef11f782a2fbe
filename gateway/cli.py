"""The command line: serve, keys, replay, record, check-config. `main(argv) -> exit code`.

Start-up problems (a bad config, a database another gateway owns, a port in use, a missing
recording...) are one line on stderr and exit status 2; `-v` adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import signal
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from . import dbtools, gcstats
from .auth import KeyError_, create_key, delete_key_named, list_keys, revoke_key, set_tier
from .config import Config, ConfigError, load_config, redacted_url
from .resources import default_config_path
from .startup import StartupError, check_database_exists, check_database_location, find_exception, preflight
from .store import Store, StoreError
from .web.hypercorn_patches import HypercornMismatch
from .webhooks import cli as webhooks_cli

if TYPE_CHECKING:
    from .handle import Gateway
    from .progress import CountingRecorder

logger = logging.getLogger("gateway")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: ./config.toml, else the shipped one)")
    common.add_argument("--db", help="database path (overrides [database] path)")
    common.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser = argparse.ArgumentParser(prog="gateway", description="Real-time sports-odds gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the gateway until interrupted")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-feeds", action="store_true", help="only HTTP push ingest")
    serve.add_argument("--record", type=Path, metavar="FILE", help="also record what this gateway ingests (JSONL)")
    serve.add_argument("--role", choices=("writer", "edge"),
                       help="with [cluster]: writer (feeds, ingest, the database) or edge (streams and REST from "
                            "Redis); overrides [cluster] role")
    keys = sub.add_parser("keys", help="manage API keys")
    ks = keys.add_subparsers(dest="keys_command", required=True)
    create = ks.add_parser("create", parents=[common], help="create a key and print it once")
    create.add_argument("--tier", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[], help="extra scope, e.g. ingest")
    ks.add_parser("list", parents=[common], help="list keys (never the keys themselves)")
    revoke = ks.add_parser("revoke", parents=[common], help="revoke a key by key or name")
    revoke.add_argument("key_or_name")
    set_tier_cmd = ks.add_parser("set-tier", parents=[common], help="move a key to another tier (its streams "
                                 "the new tier lacks end within 2 s)")
    set_tier_cmd.add_argument("key_or_name")
    set_tier_cmd.add_argument("tier")
    replay = sub.add_parser("replay", parents=[common], help="serve the gateway fed by a JSONL recording")
    replay.add_argument("file", type=Path)
    replay.add_argument("--speed", type=float, default=1.0)
    replay.add_argument("--host")
    replay.add_argument("--port", type=int)
    record = sub.add_parser("record", parents=[common],
                            help="record a running gateway's odds and play-by-play streams (JSONL)")
    record.add_argument("file", type=Path)
    record.add_argument("--url", help="the gateway's base URL (default: the --db owner's, from its lock file)")
    record.add_argument("--key", help="an API key with both streams (default: a temporary one, revoked at the end)")
    sub.add_parser("check-config", parents=[common],
                   help="check the configuration (and the files it names); print it, secrets redacted")
    webhooks_cli.add_parser(sub, common)  # `gateway webhooks ...` (issue 7)
    dbtools.add_parsers(sub, common)  # `gateway backup|restore FILE`, `gateway db stats` (issue 17)
    return parser


def _config(args: argparse.Namespace) -> tuple[Config, str]:
    """The effective config and where it came from. The shipped defaults' relative paths are
    relative to the working directory (they live inside the installed package); a user's
    config file's are relative to that file; `--db` is relative to the working directory."""
    path = args.config
    if path is None and Path("config.toml").is_file():
        path = Path("config.toml").resolve()
    if path is None:
        shipped = default_config_path()
        config = dataclasses.replace(load_config(shipped), base_dir=Path.cwd())
        source = f"the shipped defaults ({shipped})"
    else:
        config = load_config(path)
        source = str(path.resolve())
    if args.db:
        db = args.db if args.db == ":memory:" else os.path.abspath(args.db)
        config = dataclasses.replace(config, database=dataclasses.replace(config.database, path=db))
    server = config.server
    if getattr(args, "host", None):
        server = dataclasses.replace(server, host=args.host)
    if getattr(args, "port", None) is not None:
        server = dataclasses.replace(server, port=args.port)
    if getattr(args, "role", None):
        if config.cluster is None:
            raise StartupError(f"--role {args.role} needs a [cluster] table with redis_url in the config "
                               "(README, Cluster)")
        config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, role=args.role))
    return dataclasses.replace(config, server=server), source


REDACTED = "***"


def redacted(config: Config) -> dict[str, object]:
    """The config as a dict, secrets replaced (session_secret, feeds' api_key)."""
    data = dataclasses.asdict(config)
    if data["server"]["session_secret"]:
        data["server"]["session_secret"] = REDACTED
    for feed in data["feeds"]:
        if feed["api_key"]:
            feed["api_key"] = REDACTED
    if data["cluster"]:
        data["cluster"]["redis_url"] = redacted_url(data["cluster"]["redis_url"])
    return data


def _check_config(config: Config, source: str) -> int:
    preflight(config)  # feed files, the database's directory: what `serve` would refuse
    out = {"config_file": source, "database_file": config.db_path(), **redacted(config)}
    print(json.dumps(out, indent=2, default=str))
    print(f"gateway: configuration OK ({source})", file=sys.stderr)
    return 0


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler], force=True)
    # neither format shows them: a record would otherwise call getpid(), look up its thread
    # and process names and walk the stack for its caller (an access-log line per ingest
    # request; the logging HOWTO's "Optimization" section names these switches)
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]


# exceptions whose message is the whole story: one line, exit 2 (traceback with -v)
ONE_LINE = (StartupError, ConfigError, StoreError, KeyError_, HypercornMismatch)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config, source = _config(args)
        if args.command == "check-config":
            return _check_config(config, source)
        if args.command == "keys":
            return _keys(args, config)
        if args.command == "webhooks":
            return webhooks_cli.run(args, config)
        if args.command in dbtools.COMMANDS:
            return dbtools.run(args, config)
        _logging(args)
        if args.command == "record":
            from . import record_client

            return record_client.run(args, config)
        return _serve(args, config)
    except BaseException as exc:  # Trio wraps errors in exception groups: look inside
        from .record_client import RecordError

        found = find_exception(exc, (*ONE_LINE, RecordError))
        if found is None:
            raise
        if args.verbose:
            traceback.print_exception(exc)
        print(f"gateway: {found}", file=sys.stderr)
        return 1 if isinstance(found, RecordError) else 2


def _keys(args: argparse.Namespace, config: Config) -> int:
    if args.keys_command == "create":  # may create the database (before a gateway first ran)
        check_database_location(config.db_path())
    else:  # list and revoke work on what is there
        check_database_exists(config.db_path())
    # beside a running gateway: short transactions that wait for its writer (SQLite's busy
    # timeout); the schema is left alone when the file has it. The gateway's key cache
    # (2 s) makes a new or revoked key count within 2 s.
    store = Store(config.db_path(), readers=1)
    try:
        if args.keys_command == "create":
            key = store.write_fn_sync(lambda c: create_key(c, name=args.name, tier=args.tier, tiers=config.tiers,
                                                           scopes=tuple(args.scope)))
            print(f"created key {args.name!r} (tier {args.tier}); it is shown only once:", file=sys.stderr)
            print(key)
        elif args.keys_command == "list":
            for row in store.read_sync(list_keys):
                state = "revoked" if row["revoked"] else "active"
                print(f"{row['name']}\t{row['prefix']}\t{row['tier']}\t{row['scopes'] or '-'}\t{state}")
        elif args.keys_command == "set-tier":
            name = store.write_fn_sync(lambda c: set_tier(c, args.key_or_name, args.tier, config.tiers))
            print(f"key {name!r} is now tier {args.tier}")
        else:
            name = store.write_fn_sync(lambda c: revoke_key(c, args.key_or_name))
            print(f"revoked key {name!r}")
    finally:
        store.close()
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    """serve and replay: everything runs in `app.serve`, which takes the database first."""
    from .app import serve
    from .config import FeedConfig
    from .progress import CountingRecorder, report_recording
    from .tls import tls_files

    tls_files(config)  # a missing or bad cert/key: one line, exit 2, before anything is touched
    feeds = not getattr(args, "no_feeds", False)
    if args.command == "replay":
        from .feeds.runner import set_replay_progress
        from .progress import ProgressBar

        feed = FeedConfig(type="replay", name="replay", path=str(args.file.resolve()), speed=args.speed)
        config = dataclasses.replace(config, feeds=(feed,))
        set_replay_progress(feed.source, ProgressBar("replay").update)  # one line on stderr
    recorder = None
    if getattr(args, "record", None) is not None:
        try:
            recorder = CountingRecorder(args.record)
        except OSError as exc:
            raise StartupError(f"cannot write the recording {args.record}: {exc.strerror}: check the path") from None

    async def run() -> None:
        stop = trio.Event()
        started: list[Gateway] = []
        async with trio.open_nursery() as nursery:
            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        logger.info("stopping: finishing streams and flushing the store")
                        stop.set()

            def ready(gw: Gateway) -> None:  # the database is owned and open; not listening yet
                started.append(gw)
                gw.writer.recorder = recorder  # `serve --record FILE`: what this gateway ingests

            async def server(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
                await serve(config, feeds=feeds, shutdown=stop, ready=ready, task_status=task_status)
                nursery.cancel_scope.cancel()  # serve finished its shutdown: stop listening for signals

            nursery.start_soon(on_signals)
            url = await nursery.start(server)
            # only now (port bound, database owned) may the demo key change: a start that fails
            # never breaks the key of a gateway that runs
            edge = started[0].role == "edge"  # a cluster edge has no database: the writer prints the key
            demo_key = await rotate_demo_key(started[0], config) if config.demo.print_key and not edge else None
            if recorder is not None:
                nursery.start_soon(report_recording, recorder)
            tune_gc(config)
            _banner(url, demo_key, config, recorder, role=started[0].role, feeds=feeds)

    try:
        trio.run(run)
    finally:
        if recorder is not None:
            recorder.close()
    return 0


async def rotate_demo_key(gw: Gateway, config: Config) -> str:
    def rotate(conn: sqlite3.Connection) -> str:
        delete_key_named(conn, "demo")
        return create_key(conn, name="demo", tier=config.demo.tier, tiers=config.tiers, scopes=("ingest",))

    return await gw.store.write_fn(rotate)


def tune_gc(config: Config) -> None:
    """For a serving process only (it changes the whole interpreter)."""
    # the process's own objects from startup (modules, app, config: ~60k) live until exit:
    # out of every full GC pass, which otherwise stops the loop ~15 ms longer each time
    gc.freeze()
    # A full pass walks every stream's objects (0.6-0.8 s at 10,000 streams) and, by CPython's
    # default, comes as soon as objects that live a few seconds (each heartbeat's sleep) add up
    # to a quarter of the old generation: every ~3 s there. Fewer full passes; the cost is
    # cyclic garbage (a closed connection's objects) kept longer (bench/RESULTS.md section 10).
    # Young passes: every trio task that wakes (a heartbeat, a ping, a frame) puts about ten
    # of its long-lived objects back in the youngest generation without counting as an
    # allocation, so with CPython's 700 a young pass walked 30,000-200,000 objects at 10,000
    # streams (10-130 ms). Smaller, more frequent young passes cost the same CPU in all and
    # stay under a millisecond or two (bench/RESULTS.md section 16).
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(config.server.gc_young_threshold, middle, config.server.gc_full_pass_every)
    gcstats.install()  # pauses per generation in /metrics


def _banner(url: str, demo_key: str | None, config: Config, recorder: CountingRecorder | None = None,
            role: str = "single", feeds: bool = True) -> None:
    running = ", ".join(f.type for f in config.feeds) if feeds else ""
    lines = [f"gateway listening on {url}", f"  database: {config.db_path()}",
             f"  feeds: {running or 'none (HTTP push only)'}"]
    if config.cluster is not None:  # README "Cluster"
        redis_at = redacted_url(config.cluster.redis_url)
        if role == "edge":
            lines[1:] = [f"  cluster edge: streams and REST from Redis at {redis_at} (no database, no feeds, "
                         "no ingest)"]
        else:
            lines.append(f"  cluster writer: every commit also goes to Redis at {redis_at}")
    if recorder is not None:
        lines.append(f"  recording what it ingests to {recorder.path}")
    if demo_key:
        lines += [f"  demo key (enterprise, ingest): {demo_key}",
                  f"  dashboard: {url}/dashboard",
                  f"  try: curl -N '{url}/v1/odds-drop/all?apiKey={demo_key}&threshold=10'"]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""The command line: serve, keys, replay, record, check-config. `main(argv) -> exit code`."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from . import dbtools
from .auth import KeyError_, create_key, delete_key_named, list_keys, revoke_key
from .config import Config, ConfigError, load_config
from .resources import default_config_path
from .store import Store, StoreError
from .webhooks import cli as webhooks_cli

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
    keys = sub.add_parser("keys", help="manage API keys")
    ks = keys.add_subparsers(dest="keys_command", required=True)
    create = ks.add_parser("create", parents=[common], help="create a key and print it once")
    create.add_argument("--tier", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[], help="extra scope, e.g. ingest")
    ks.add_parser("list", parents=[common], help="list keys (never the keys themselves)")
    revoke = ks.add_parser("revoke", parents=[common], help="revoke a key by key or name")
    revoke.add_argument("key_or_name")
    replay = sub.add_parser("replay", parents=[common], help="serve the gateway fed by a JSONL recording")
    replay.add_argument("file", type=Path)
    replay.add_argument("--speed", type=float, default=1.0)
    replay.add_argument("--host")
    replay.add_argument("--port", type=int)
    record = sub.add_parser("record", parents=[common], help="serve the gateway and record what it ingests")
    record.add_argument("file", type=Path)
    record.add_argument("--host")
    record.add_argument("--port", type=int)
    sub.add_parser("check-config", parents=[common], help="print the effective configuration")
    webhooks_cli.add_parser(sub, common)  # `gateway webhooks ...` (issue 7)
    dbtools.add_parsers(sub, common)  # `gateway backup|restore FILE`, `gateway db stats` (issue 17)
    return parser


def _config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None:
        path = Path("config.toml") if Path("config.toml").is_file() else default_config_path()
    config = load_config(path)
    if args.db:
        config = dataclasses.replace(config, database=dataclasses.replace(config.database, path=args.db),
                                     base_dir=Path.cwd())
    server = config.server
    if getattr(args, "host", None):
        server = dataclasses.replace(server, host=args.host)
    if getattr(args, "port", None) is not None:
        server = dataclasses.replace(server, port=args.port)
    return dataclasses.replace(config, server=server)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        if args.command == "check-config":
            print(json.dumps(dataclasses.asdict(config), indent=2, default=str))
            return 0
        if args.command == "keys":
            return _keys(args, config)
        if args.command == "webhooks":
            return webhooks_cli.run(args, config)
        if args.command in dbtools.COMMANDS:
            return dbtools.run(args, config)
        _logging(args)
        return _serve(args, config)
    except (ConfigError, StoreError, KeyError_) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2


def _keys(args: argparse.Namespace, config: Config) -> int:
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
        else:
            name = store.write_fn_sync(lambda c: revoke_key(c, args.key_or_name))
            print(f"revoked key {name!r}")
    finally:
        store.close()
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    from .app import Gateway, serve
    from .config import FeedConfig
    from .tls import tls_files

    tls_files(config)  # a missing or bad cert/key: one line, exit 2, before anything is touched
    feeds = not getattr(args, "no_feeds", False)
    if args.command == "replay":
        from .feeds.runner import set_replay_progress
        from .progress import ProgressBar

        feed = FeedConfig(type="replay", name="replay", path=str(args.file.resolve()), speed=args.speed)
        config = dataclasses.replace(config, feeds=(feed,))
        set_replay_progress(feed.source, ProgressBar("replay").update)  # one line on stderr
    demo_key = None
    if config.demo.print_key:
        store = Store(config.db_path(), readers=1)
        try:
            def rotate(conn: object) -> str:
                delete_key_named(conn, "demo")  # type: ignore[arg-type]
                return create_key(conn, name="demo", tier=config.demo.tier, tiers=config.tiers,  # type: ignore[arg-type]
                                  scopes=("ingest",))
            demo_key = store.write_fn_sync(rotate)
        finally:
            store.close()

    async def run() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        logger.info("stopping: finishing streams and flushing the store")
                        stop.set()

            def record(gw: Gateway) -> None:  # `gateway record`: count what is written, show it on stderr
                from .progress import CountingRecorder, report_recording

                recorder = gw.writer.recorder = CountingRecorder(args.file)
                nursery.start_soon(report_recording, recorder)

            async def server(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
                await serve(config, feeds=feeds, shutdown=stop, ready=record if args.command == "record" else None,
                            task_status=task_status)
                nursery.cancel_scope.cancel()  # serve finished its shutdown: stop listening for signals

            nursery.start_soon(on_signals)
            url = await nursery.start(server)
            tune_gc(config)
            _banner(url, demo_key, config)

    trio.run(run)
    return 0


def tune_gc(config: Config) -> None:
    """For a serving process only (it changes the whole interpreter)."""
    # the process's own objects from startup (modules, app, config: ~60k) live until exit:
    # out of every full GC pass, which otherwise stops the loop ~15 ms longer each time
    gc.freeze()
    # A full pass walks every stream's objects (0.6-0.8 s at 10,000 streams) and, by CPython's
    # default, comes as soon as objects that live a few seconds (each heartbeat's sleep) add up
    # to a quarter of the old generation: every ~3 s there. Fewer full passes; the cost is
    # cyclic garbage (a closed connection's objects) kept longer (bench/RESULTS.md section 10).
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, config.server.gc_full_pass_every)


def _banner(url: str, demo_key: str | None, config: Config) -> None:
    lines = [f"gateway listening on {url}", f"  database: {config.db_path()}",
             f"  feeds: {', '.join(f.type for f in config.feeds) or 'none (HTTP push only)'}"]
    if demo_key:
        lines += [f"  demo key (enterprise, ingest): {demo_key}",
                  f"  dashboard: {url}/dashboard",
                  f"  try: curl -N '{url}/v1/odds-drop/all?apiKey={demo_key}&threshold=10'"]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

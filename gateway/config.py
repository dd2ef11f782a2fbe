"""Strict configuration: config.toml -> frozen dataclasses; unknown keys are errors.

`config_from_dict` is pure; `load_config` reads the file and resolves paths against the
config file's directory. The CLI overrides a handful of values with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

FEED_TYPES = ("simulator", "replay", "the_odds_api", "nba_live")


class ConfigError(ValueError):
    """A config problem; the message names the table and key."""


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 4 * 1024 * 1024
    session_secret: str = ""  # empty: a random secret kept in the database
    session_ttl_s: int = 12 * 3600
    graceful_timeout_s: float = 1.0
    # `gateway serve` only: young-generation GC passes between two full ones (CPython: 10)
    gc_full_pass_every: int = 20000
    gc_young_threshold: int = 50  # `gateway serve`: allocations between two young GC passes (CPython: 700)
    header_timeout_s: float = 10.0  # a request head must arrive within this long (else the connection closes)
    body_timeout_s: float = 30.0  # a request body that stalls this long gets 408 and the connection closes
    max_pending_connections: int = 512  # connections without a whole request; past it the oldest is closed
    # self-hosting (README "Behind a reverse proxy", "TLS without a proxy")
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For / -Proto are believed
    tls_cert: str = ""  # PEM certificate (chain); with tls_key, the gateway serves https and wss itself
    tls_key: str = ""


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    path: str = "gateway.db"
    retention_hours: float = 48.0
    prune_interval_s: float = 300.0
    checkpoint_interval_s: float = 1.0  # WAL -> database copy, off the commit path (store.checkpoint)
    max_size_mb: float = 0.0  # 0: no limit; else the oldest stream-log rows go first (gateway/retention.py)
    history_days: float = 14.0  # line history (every price change), apart from the resume window
    inline_commit_rows: int = 64  # a commit of at most this many rows runs in the event loop (store.py); 0: never


@dataclass(frozen=True, kw_only=True)
class StreamsConfig:
    heartbeat_s: int = 5
    retry_ms: int = 2000
    subscriber_buffer: int = 4096
    writer_batch_ms: int = 0
    max_batch_rows: int = 5000
    ws_heartbeat_s: int = 30
    ws_ping_interval_s: float = 10.0
    ws_idle_timeout_s: float = 30.0
    ws_messages_per_s: float = 20.0  # client messages per WebSocket; past the budget: bad_message, close 1008
    ws_message_burst: float = 60.0
    recent_drops: int = 200
    direct_writes: bool = True  # SSE and WS: the publisher writes to sockets itself (see web/direct.py)
    direct_backlog_bytes: int = 4 * 1024 * 1024  # unsent bytes before a client is cut as slow
    detach_live_streams: bool = True  # live SSE streams leave Hypercorn's per-connection machinery
    write_stall_timeout_s: float = 30.0  # a stream whose socket takes no byte for this long is closed
    keep_alive_ingest: bool = True  # after a 200, a keep-alive connection's ingest POSTs skip Hypercorn


@dataclass(frozen=True, kw_only=True)
class SourcesConfig:
    stale_after_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    print_key: bool = True
    tier: str = "enterprise"


@dataclass(frozen=True, kw_only=True)
class BooksConfig:
    per_market: tuple[str, ...] = ()
    game_line: tuple[str, ...] = ()

    def coverage(self) -> dict[str, str]:
        cov = {b: "per_market" for b in self.per_market}
        cov.update({b: "game_line" for b in self.game_line})
        return cov


@dataclass(frozen=True, kw_only=True)
class WebhooksConfig:
    # refuse destinations that are not public addresses (loopback, private, link-local...):
    # checked on the address each POST connects to (gateway/webhooks/guard.py)
    block_private_addresses: bool = False
    concurrency: int = 20  # POSTs in flight, all keys (deliveries and /test)
    per_key_concurrency: int = 5  # of which one key may hold at most this many


@dataclass(frozen=True, kw_only=True)
class SteamConfig:
    # a steam frame: at least `books` books move one outcome the same way by at least
    # `threshold` cents each within `window_s` (gateway/core/steam.py)
    books: int = 3
    threshold: int = 10
    window_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """Beyond one machine (README "Cluster"): one writer and any number of edges fed through
    Redis Streams. Absent: one process, as always, and Redis is never imported."""

    redis_url: str  # redis://[:password@]host:port/db, rediss:// (TLS) or unix:///path.sock
    role: str = ""  # writer | edge; `gateway serve --role` overrides it
    edge_id: str = ""  # names an edge in cap leases and logs; default: <hostname>-<port>
    lease_s: float = 10.0  # a dead edge's connection slots are freed within this long
    writer_url: str = ""  # the writer's URL as clients reach it (421 answers name it); default: where it listens


CLUSTER_ROLES = ("writer", "edge")


@dataclass(frozen=True, kw_only=True)
class TierConfig:
    max_connections: int
    pbp_sse: bool
    odds_streams: bool
    requests_per_minute: int = 600
    # ingest's own limit (issue 19; core/ingest_limit.py): requests a second and rows a second
    ingest_requests_per_s: int = 100
    ingest_rows_per_s: int = 10_000


@dataclass(frozen=True, kw_only=True)
class FeedConfig:
    type: str
    name: str = ""  # the source name in source-health; defaults to the type
    sports: tuple[str, ...] = ()
    interval_s: float = 1.0
    role: str = "primary"
    seed: int | None = None  # simulator: fixed seed for reproducible data
    events_per_sport: int = 4  # simulator
    path: str = ""  # replay: JSONL file
    speed: float = 1.0  # replay: 2.0 = twice as fast
    loop: bool = False  # replay: start again at the end
    base_url: str = ""
    api_key: str = ""  # the_odds_api: prefer api_key_env
    api_key_env: str = "ODDS_API_KEY"
    regions: tuple[str, ...] = ("us",)
    markets: tuple[str, ...] = ("h2h", "spreads", "totals")
    bookmakers: tuple[str, ...] = ()
    stale_after_s: float = 60.0

    @property
    def source(self) -> str:
        return self.name or self.type


DEFAULT_TIERS = {
    "free": TierConfig(max_connections=1, pbp_sse=False, odds_streams=False, requests_per_minute=60,
                       ingest_requests_per_s=5, ingest_rows_per_s=1_000),
    "starter": TierConfig(max_connections=3, pbp_sse=True, odds_streams=False, requests_per_minute=120,
                          ingest_requests_per_s=10, ingest_rows_per_s=2_000),
    "pro": TierConfig(max_connections=25, pbp_sse=True, odds_streams=False, requests_per_minute=600,
                      ingest_requests_per_s=50, ingest_rows_per_s=10_000),
    "business": TierConfig(max_connections=100, pbp_sse=True, odds_streams=True, requests_per_minute=1200,
                           ingest_requests_per_s=250, ingest_rows_per_s=25_000),
    "enterprise": TierConfig(max_connections=1000, pbp_sse=True, odds_streams=True, requests_per_minute=6000,
                             ingest_requests_per_s=1_000, ingest_rows_per_s=100_000),
    "scale": TierConfig(max_connections=1000, pbp_sse=True, odds_streams=True, requests_per_minute=12000,
                        ingest_requests_per_s=2_000, ingest_rows_per_s=200_000),
}


@dataclass(frozen=True, kw_only=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    books: BooksConfig = field(default_factory=BooksConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    steam: SteamConfig = field(default_factory=SteamConfig)
    tiers: Mapping[str, TierConfig] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    feeds: tuple[FeedConfig, ...] = ()
    cluster: ClusterConfig | None = None  # [cluster]: README "Cluster"
    base_dir: Path = field(default_factory=Path.cwd)

    def db_path(self) -> str:
        p = self.database.path
        if p == ":memory:" or Path(p).is_absolute():
            return p
        return str(self.base_dir / p)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a field's type hint; lists become tuples."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type[T], table: Any, where: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(table.keys() - fields.keys())
    if unknown:
        raise ConfigError(f"[{where}] unknown key(s): {', '.join(unknown)}")
    kwargs = {k: _coerce(v, hints[k], f"[{where}] {k}") for k, v in table.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"[{where}] {exc}") from None


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def config_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> Config:
    known = {"server", "database", "streams", "sources", "demo", "books", "tiers", "feeds", "webhooks", "steam",
             "cluster"}
    unknown = sorted(data.keys() - known)
    _check(not unknown, f"unknown top-level key(s): {', '.join(unknown)}")
    parts: dict[str, Any] = {}
    for name, cls in (("server", ServerConfig), ("database", DatabaseConfig), ("streams", StreamsConfig),
                      ("sources", SourcesConfig), ("demo", DemoConfig), ("books", BooksConfig),
                      ("webhooks", WebhooksConfig), ("steam", SteamConfig)):
        if name in data:
            parts[name] = _build(cls, data[name], name)
    if "tiers" in data:
        _check(isinstance(data["tiers"], dict) and bool(data["tiers"]), "[tiers] must be a non-empty table")
        parts["tiers"] = {k: _build(TierConfig, v, f"tiers.{k}") for k, v in data["tiers"].items()}
    if "feeds" in data:
        _check(isinstance(data["feeds"], list), "feeds must be an array of tables ([[feeds]])")
        feeds = tuple(_build(FeedConfig, t, f"feeds[{i}]") for i, t in enumerate(data["feeds"]))
        for i, f in enumerate(feeds):
            _check(f.type in FEED_TYPES,
                   f"[feeds[{i}]] type: unknown feed type {f.type!r} (use {', '.join(FEED_TYPES)})")
            _check(f.interval_s > 0, f"[feeds[{i}]] interval_s must be > 0")
            _check(f.speed > 0, f"[feeds[{i}]] speed must be > 0")
            _check(f.role in ("primary", "secondary"), f"[feeds[{i}]] role must be primary or secondary")
            _check(f.type != "replay" or bool(f.path), f"[feeds[{i}]] path is required for a replay feed")
        parts["feeds"] = feeds
    if "cluster" in data:
        _check(not isinstance(data["cluster"], dict) or "redis_url" in data["cluster"],
               "[cluster] redis_url is required (e.g. redis://127.0.0.1:6379/0)")
        parts["cluster"] = _build(ClusterConfig, data["cluster"], "cluster")
        check_cluster(parts["cluster"])
    if "path" not in data.get("database", {}):
        # no [database] path: the working directory, never the config file's directory (which
        # for the shipped defaults is inside the installed package)
        db = parts.get("database", DatabaseConfig())
        parts["database"] = dataclasses.replace(db, path=str(Path.cwd() / db.path))
    cfg = Config(**parts, base_dir=base_dir or Path.cwd())
    w = cfg.webhooks
    _check(1 <= w.concurrency <= 1000, "[webhooks] concurrency must be between 1 and 1000")
    _check(1 <= w.per_key_concurrency <= w.concurrency,
           f"[webhooks] per_key_concurrency must be between 1 and concurrency ({w.concurrency})")
    s = cfg.streams
    _check(1 <= s.heartbeat_s <= 30, "[streams] heartbeat_s must be between 1 and 30")
    _check(s.write_stall_timeout_s > 0, "[streams] write_stall_timeout_s must be > 0")
    _check(s.subscriber_buffer >= 16, "[streams] subscriber_buffer must be >= 16")
    _check(s.ws_messages_per_s > 0, "[streams] ws_messages_per_s must be > 0")
    _check(s.ws_message_burst >= 10, "[streams] ws_message_burst must be >= 10 (a snapshot counts 10)")
    _check(cfg.demo.tier in cfg.tiers, f"[demo] tier: unknown tier {cfg.demo.tier!r}")
    for name, t in cfg.tiers.items():
        _check(t.ingest_requests_per_s >= 1, f"[tiers.{name}] ingest_requests_per_s must be >= 1")
        _check(t.ingest_rows_per_s >= 1, f"[tiers.{name}] ingest_rows_per_s must be >= 1")
    both = set(cfg.books.per_market) & set(cfg.books.game_line)
    _check(not both, f"[books] listed as both per_market and game_line: {', '.join(sorted(both))}")
    _check(cfg.database.checkpoint_interval_s > 0, "[database] checkpoint_interval_s must be > 0")
    _check(cfg.database.max_size_mb >= 0, "[database] max_size_mb must be >= 0 (0: no limit)")
    _check(0 < cfg.database.history_days <= 3650, "[database] history_days must be > 0 and at most 3650")
    _check(0 <= cfg.database.inline_commit_rows <= 10_000, "[database] inline_commit_rows must be 0..10000")
    _check(2 <= cfg.steam.books <= 50, "[steam] books must be between 2 and 50")
    _check(1 <= cfg.steam.threshold <= 200, "[steam] threshold must be between 1 and 200 (cents)")
    _check(0 < cfg.steam.window_s <= 3600, "[steam] window_s must be > 0 and at most 3600")
    _check(0 <= cfg.server.port <= 65535, "[server] port must be between 0 and 65535")
    _check(cfg.server.gc_full_pass_every >= 1, "[server] gc_full_pass_every must be >= 1")
    _check(cfg.server.gc_young_threshold >= 10, "[server] gc_young_threshold must be >= 10")
    _check(cfg.server.header_timeout_s > 0, "[server] header_timeout_s must be > 0")
    _check(cfg.server.body_timeout_s > 0, "[server] body_timeout_s must be > 0")
    _check(cfg.server.max_pending_connections >= 1, "[server] max_pending_connections must be >= 1")
    _check_self_hosting(cfg.server)
    if cfg.server.tls_cert:  # relative to the config file, like the database (store them resolved)
        base = cfg.base_dir
        server = dataclasses.replace(cfg.server, tls_cert=str(base / cfg.server.tls_cert),
                                     tls_key=str(base / cfg.server.tls_key))
        cfg = dataclasses.replace(cfg, server=server)
    return cfg


def _check_self_hosting(server: ServerConfig) -> None:
    for cidr in server.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"[server] trusted_proxies: {cidr!r} is not an IP address or CIDR "
                              "(e.g. 127.0.0.1/32, 10.0.0.0/8, ::1)") from None
    _check(bool(server.tls_cert) == bool(server.tls_key),
           "[server] tls_cert and tls_key go together: set both (PEM files) or neither")


_EDGE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_cluster(c: ClusterConfig) -> None:
    """[cluster], checked without importing the Redis client (it may not be installed)."""
    url = urlsplit(c.redis_url)
    _check(url.scheme in ("redis", "rediss", "unix"),
           f"[cluster] redis_url: {c.redis_url[:60]!r} is not a Redis URL "
           "(redis://host:6379/0, rediss://... for TLS, unix:///path/redis.sock)")
    _check(bool(url.path) if url.scheme == "unix" else bool(url.hostname),
           f"[cluster] redis_url: {'a socket path' if url.scheme == 'unix' else 'a host'} is missing")
    try:
        url.port  # noqa: B018  # a bad port raises here
    except ValueError:
        raise ConfigError("[cluster] redis_url: the port is not a number between 0 and 65535") from None
    _check(c.role in ("", *CLUSTER_ROLES), f"[cluster] role: {c.role!r} is not writer or edge")
    _check(not c.edge_id or bool(_EDGE_ID.match(c.edge_id)),
           "[cluster] edge_id: 1-64 characters of letters, digits and _ . : -")
    _check(1 <= c.lease_s <= 300, "[cluster] lease_s must be between 1 and 300 (seconds)")
    _check(not c.writer_url or urlsplit(c.writer_url).scheme in ("http", "https"),
           "[cluster] writer_url: an http:// or https:// URL (as clients reach the writer)")


def redacted_url(url: str) -> str:
    """A URL without its password (logs, the banner, check-config)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = (f"{parts.username}:***@" if parts.username else ":***@") + (parts.hostname or "") + \
        (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def load_config(path: Path) -> Config:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}: check --config") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (TOML is UTF-8)") from None
    return config_from_dict(data, base_dir=path.resolve().parent)

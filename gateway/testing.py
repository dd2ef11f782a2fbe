"""Run a real gateway inside your own tests.

Trio test suites::

    async with gateway.testing.open_gateway() as gw:
        ...  # gw.base_url, await gw.move(...)

Any test runner (pytest, unittest, asyncio, anyio), from a background thread::

    with gateway.testing.run_gateway() as gw:
        requests.get(f"{gw.base_url}/v1/sports", params={"apiKey": gw.key})
        gw.move("evt1", "pinnacle", "h2h", "home", -110, -120)

Each gateway listens on 127.0.0.1 on an ephemeral port with a database in a temporary
directory (removed at exit), no feeds unless asked, and a ready enterprise key (`gw.key`).
Records go straight to the writer, through the same validation as HTTP push, and a push
returns once its rows are committed and published.
"""

from __future__ import annotations

import tempfile
import threading
import tomllib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio

from .app import Gateway, serve
from .auth import create_key
from .config import Config, config_from_dict
from .core.model import Play, Quote
from .core.parse import RowError, parse_flat_quote, parse_pbp_row
from .resources import default_config_path, demo_recording_path
from .writer import wall_ms

__all__ = ["GatewayHandle", "ManualClock", "SyncGatewayHandle", "gateway_config", "open_gateway", "run_gateway"]


class ManualClock:
    """A clock you move by hand: frames' `timestamp` and default `observed_at_ms` read it."""

    def __init__(self, start_ms: int = 1_778_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        self.now_ms += ms
        return self.now_ms


def gateway_config(db_dir: Path, **sections: Mapping[str, Any]) -> Config:
    """The shipped config with port 0, a database in `db_dir`, no feeds, no demo key."""
    data = tomllib.loads(default_config_path().read_text())
    data["feeds"] = []
    data["demo"] = {"print_key": False}
    data["server"] = {**data.get("server", {}), "host": "127.0.0.1", "port": 0, "graceful_timeout_s": 0.2}
    data["database"] = {**data.get("database", {}), "path": str(db_dir / "gateway.db")}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return config_from_dict(data, base_dir=db_dir)


def _quote_rows(rows: Iterable[Quote | Mapping[str, Any]], now_ms: int) -> list[Quote]:
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(row if isinstance(row, Quote) else parse_flat_quote(row, now_ms=now_ms))
        except RowError as exc:
            raise ValueError(f"quote {i}: {exc}") from None
    return out


class GatewayHandle:
    """A running gateway, driven from Trio."""

    default_event = ("basketball_nba", "Los Angeles Lakers", "Golden State Warriors")

    def __init__(self, gw: Gateway, base_url: str, clock: ManualClock | None) -> None:
        self.gateway = gw
        self.base_url = base_url
        self.ws_url = "ws" + base_url.removeprefix("http")
        self.clock = clock
        self.key = self.create_key("enterprise", name="test-default", scopes=("ingest",))

    def create_key(self, tier: str = "enterprise", *, name: str | None = None,
                   scopes: tuple[str, ...] = ()) -> str:
        name = name or f"test-{tier}-{len(self.gateway.caps.active)}-{wall_ms()}-{id(object())}"
        return self.gateway.store.write_fn_own_connection(
            lambda c: create_key(c, name=name, tier=tier, tiers=self.gateway.config.tiers, scopes=scopes))

    def _now(self) -> int:
        return self.clock() if self.clock is not None else wall_ms()

    async def push_quotes(self, rows: Iterable[Quote | Mapping[str, Any]], *, source: str = "test") -> None:
        """Ingest quotes (Quote records or flat-quote dicts); returns once published."""
        quotes = _quote_rows(rows, self._now())
        await self.gateway.writer.submit_and_wait(quotes, [], source=source)

    async def push_plays(self, rows: Iterable[Play | Mapping[str, Any]]) -> None:
        now = self._now()
        plays = [r if isinstance(r, Play) else parse_pbp_row(r, now_ms=now) for r in rows]
        await self.gateway.writer.submit_and_wait([], plays, source="test")

    async def move(self, event: str, book: str, market: str, outcome: str, from_price: int, to_price: int,
                   *, sport: str | None = None, point: float | None = None, player: str | None = None,
                   home_team: str | None = None, away_team: str | None = None) -> None:
        """Set a price, then move it: the second quote fires a drop if it moved enough."""
        sport_key, home, away = self.default_event
        row = {"sport_key": sport or sport_key, "event_id": event, "home_team": home_team or home,
               "away_team": away_team or away, "commence_time": self._now() + 3_600_000, "bookmaker": book,
               "market_key": market, "outcome": outcome, "point": point, "player": player}
        await self.push_quotes([{**row, "price": from_price}])
        await self.push_quotes([{**row, "price": to_price}])

    def advance(self, ms: int) -> int:
        """Move the manual clock (only with `open_gateway(manual_clock=True)`)."""
        if self.clock is None:
            raise RuntimeError("this gateway runs on the wall clock; open it with manual_clock=True")
        return self.clock.advance(ms)

    async def replay(self, path: str | Path | None = None) -> int:
        """Ingest a JSONL recording as fast as possible (the shipped demo one by default)."""
        from .feeds.replay import read_recording

        count = 0
        for batch in read_recording(path or demo_recording_path()):
            if batch.kind == "quotes":
                await self.gateway.writer.submit_and_wait(list(batch.quotes), [], source=batch.source or "replay")
            else:
                await self.gateway.writer.submit_and_wait([], list(batch.plays), source="replay")
            count += 1
        return count


@asynccontextmanager
async def open_gateway(config: Config | None = None, *, feeds: bool = False,
                       manual_clock: bool = False) -> AsyncIterator[GatewayHandle]:
    """Start a gateway in the current Trio run; stop it cleanly on exit."""
    with tempfile.TemporaryDirectory(prefix="gateway-test-") as tmp:
        cfg = config or gateway_config(Path(tmp))
        clock = ManualClock(wall_ms()) if manual_clock else None
        stop = trio.Event()
        holder: list[Gateway] = []
        async with trio.open_nursery() as nursery:
            url = await nursery.start(lambda task_status: serve(
                cfg, feeds=feeds, shutdown=stop, clock=clock or wall_ms, ready=holder.append,
                task_status=task_status))
            try:
                yield GatewayHandle(holder[0], url, clock)
            finally:
                stop.set()


class SyncGatewayHandle:
    """The same handle for synchronous code: each call runs in the gateway's Trio thread."""

    def __init__(self, handle: GatewayHandle, token: trio.lowlevel.TrioToken) -> None:
        self._h, self._token = handle, token
        self.base_url, self.ws_url, self.key = handle.base_url, handle.ws_url, handle.key
        self.gateway = handle.gateway

    def _run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return trio.from_thread.run(lambda: fn(*args, **kw), trio_token=self._token)

    def create_key(self, tier: str = "enterprise", **kw: Any) -> str:
        return str(trio.from_thread.run_sync(lambda: self._h.create_key(tier, **kw), trio_token=self._token))

    def push_quotes(self, rows: Iterable[Quote | Mapping[str, Any]], **kw: Any) -> None:
        self._run(self._h.push_quotes, list(rows), **kw)

    def push_plays(self, rows: Iterable[Play | Mapping[str, Any]]) -> None:
        self._run(self._h.push_plays, list(rows))

    def move(self, *args: Any, **kw: Any) -> None:
        self._run(self._h.move, *args, **kw)

    def advance(self, ms: int) -> int:
        return int(trio.from_thread.run_sync(self._h.advance, ms, trio_token=self._token))

    def replay(self, path: str | Path | None = None) -> int:
        return int(self._run(self._h.replay, path))


@contextmanager
def run_gateway(config: Config | None = None, *, feeds: bool = False, manual_clock: bool = False,
                startup_timeout_s: float = 10.0) -> Iterator[SyncGatewayHandle]:
    """Run a gateway in a background thread for the duration of the block."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = trio.Event()
        box["stop"] = stop
        box["token"] = trio.lowlevel.current_trio_token()
        try:
            async with open_gateway(config, feeds=feeds, manual_clock=manual_clock) as handle:
                box["handle"] = handle
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=lambda: _run_quietly(main), name="gateway-test", daemon=True)
    thread.start()
    if not started.wait(startup_timeout_s) or "error" in box:
        raise RuntimeError(f"gateway did not start: {box.get('error')!r}")
    try:
        yield SyncGatewayHandle(box["handle"], box["token"])
    finally:
        trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
        thread.join(startup_timeout_s)


def _run_quietly(main: Any) -> None:
    try:
        trio.run(main)
    except BaseException:  # reported to the caller through box["error"]
        pass



"""Shared fixtures: a real gateway on 127.0.0.1:0 with a temporary database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.app import serve
from gateway.auth import create_key
from gateway.config import Config, config_from_dict
from gateway.store import Store

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def make_config(tmp_path: Path, **sections: Any) -> Config:
    import tomllib

    data = tomllib.loads(SHIPPED_CONFIG.read_text())
    data["feeds"] = []
    data["demo"] = {"print_key": False}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values) if isinstance(values, dict) else data.__setitem__(name, values)
    data.setdefault("database", {})["path"] = str(tmp_path / "test.db")
    data.setdefault("server", {})["port"] = 0
    return config_from_dict(data, base_dir=tmp_path)


@dataclass
class Running:
    url: str
    config: Config
    stop: trio.Event
    done: trio.Event
    keys: dict[str, str]

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(10, read=30), **kw)

    def key(self, tier: str = "enterprise", *, scopes: tuple[str, ...] = (), name: str | None = None) -> str:
        name = name or f"{tier}-{'-'.join(scopes) or 'plain'}"
        if name not in self.keys:
            store = Store(self.config.db_path(), readers=1)
            try:
                self.keys[name] = store.write_fn_sync(
                    lambda c: create_key(c, name=name, tier=tier, tiers=self.config.tiers, scopes=scopes))
            finally:
                store.close()
        return self.keys[name]


async def start_gateway(nursery: trio.Nursery, config: Config, *, feeds: bool = False) -> Running:
    stop, done = trio.Event(), trio.Event()

    async def run(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await serve(config, feeds=feeds, shutdown=stop, task_status=task_status)
        finally:
            done.set()

    url = await nursery.start(run)
    return Running(url, config, stop, done, {})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def gateway(nursery: trio.Nursery, config: Config) -> AsyncIterator[Running]:
    running = await start_gateway(nursery, config)
    yield running
    running.stop.set()
    with trio.fail_after(10):
        await running.done.wait()




@pytest.fixture(autouse=True)
def _trio_websocket_reader_failures(monkeypatch: pytest.MonkeyPatch) -> Any:
    """trio-websocket 0.12's client reader task raises when a ping arrives while the client
    is closing (it answers with a pong that wsproto refuses), and that error cancels the
    test's own code, which pytest-trio then reports as passed without running the rest.
    Answer nothing to such pings (RFC 6455 5.5.2), and fail any test whose client reader
    task still fails for another reason."""
    import wsproto.utilities
    from trio_websocket import _impl

    failures: list[BaseException] = []
    ping, reader = _impl.WebSocketConnection._handle_ping_event, _impl.WebSocketConnection._reader_task

    async def handle_ping(self: Any, event: Any) -> None:
        try:
            await ping(self, event)
        except wsproto.utilities.LocalProtocolError:
            pass  # closing: nothing to answer

    async def reader_task(self: Any) -> None:
        try:
            await reader(self)
        except Exception as exc:
            failures.append(exc)
            raise

    monkeypatch.setattr(_impl.WebSocketConnection, "_handle_ping_event", handle_ping)
    monkeypatch.setattr(_impl.WebSocketConnection, "_reader_task", reader_task)
    yield
    assert not failures, f"a trio-websocket client's reader task failed (the test body may not have run): {failures}"

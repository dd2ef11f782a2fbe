"""A scripted HTTP/1.1 upstream on 127.0.0.1:0 for feed tests: real sockets, real httpx.

Routes map a path to a reply or a list of replies (served in order, the last one repeats).
A reply can be slow (`delay_s`, past the client's timeout), carry any status and headers,
be cut off mid-body (`cut`: the headers promise the whole body, the connection closes after
`cut` bytes) or be garbage. Every request is logged with its time, path and query.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

from gateway.core.model import Play, Quote

DATA = Path(__file__).resolve().parent / "data"
REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@dataclass
class Reply:
    body: Any = None  # JSON-encoded unless bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    cut: int | None = None  # send only this many body bytes, then close

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


@dataclass
class Request:
    at: float
    path: str
    query: dict[str, str]


class Upstream:
    def __init__(self) -> None:
        self.routes: dict[str, Reply | list[Reply]] = {}
        self.requests: list[Request] = []
        self.url = ""

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies) if len(replies) > 1 else replies[0]

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _next(self, path: str) -> Reply:
        spec = self.routes.get(path)
        if spec is None:
            return Reply({"message": "not found"}, status=404)
        if isinstance(spec, list):
            return spec.pop(0) if len(spec) > 1 else spec[0]
        return spec

    async def _read_head(self, stream: trio.SocketStream, buf: bytearray) -> bytes | None:
        while b"\r\n\r\n" not in buf:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return None
            buf += chunk
        end = buf.index(b"\r\n\r\n") + 4
        head = bytes(buf[:end])
        del buf[:end]
        return head

    async def handle(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        try:
            while True:
                head = await self._read_head(stream, buf)
                if head is None:
                    return
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                parts = urlsplit(target)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                self.requests.append(Request(trio.current_time(), parts.path, query))
                reply = self._next(parts.path)
                if reply.delay_s:
                    await trio.sleep(reply.delay_s)
                body = reply.encoded()
                lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}",
                         "Content-Type: application/json", f"Content-Length: {len(body)}",
                         *(f"{k}: {v}" for k, v in reply.headers.items())]
                data = ("\r\n".join(lines) + "\r\n\r\n").encode()
                if reply.cut is not None:
                    await stream.send_all(data + body[:reply.cut])
                    return
                await stream.send_all(data + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


@asynccontextmanager
async def serve_upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        up.url = f"http://127.0.0.1:{port}"
        nursery.start_soon(trio.serve_listeners, up.handle, listeners)
        try:
            yield up
        finally:
            nursery.cancel_scope.cancel()


class MemorySink:
    """A feed's sink in memory: the batches it submitted, in order."""

    def __init__(self) -> None:
        self.quote_batches: list[tuple[str, list[Quote]]] = []
        self.play_batches: list[list[Play]] = []
        self.changed = trio.Event()

    async def submit_quotes(self, quotes: list[Quote], *, source: str) -> None:
        self.quote_batches.append((source, quotes))
        self.changed.set()

    async def submit_plays(self, plays: list[Play]) -> None:
        self.play_batches.append(plays)
        self.changed.set()

    @property
    def quotes(self) -> list[Quote]:
        return [q for _, batch in self.quote_batches for q in batch]

    @property
    def plays(self) -> list[Play]:
        return [p for batch in self.play_batches for p in batch]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed = trio.Event()
            await self.changed.wait()

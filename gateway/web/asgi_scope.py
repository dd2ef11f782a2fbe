"""Read-only views of an ASGI scope's headers and query, shaped like Quart's."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any


class Headers:
    """Case-insensitive, read-only view of ASGI headers: `get` gives a name's first value (as
    Quart's headers do), `getlist` every value (key extraction refuses two different keys)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._h: dict[str, list[str]] = {}
        for k, v in raw:
            self._h.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))

    def get(self, name: str, default: Any = None) -> Any:
        values = self._h.get(name.lower())
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._h.get(name.lower(), ()))


class Args:
    """First value of each query parameter, as Quart's `request.args.get` gives it; `getlist`
    gives them all."""

    def __init__(self, multi: dict[str, list[str]]) -> None:
        self._multi = multi

    def get(self, name: str, default: Any = None) -> Any:
        values = self._multi.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._multi.get(name, ()))


def request_id(headers: Headers) -> str:
    """The client's X-Request-ID (its first 64 characters), else a new one."""
    return str(headers.get("x-request-id") or "")[:64] or new_request_id()


_RID_PREFIX = secrets.token_hex(8)
_rid_count = itertools.count(secrets.randbits(63))


def new_request_id() -> str:
    """32 hex digits, unique: a random prefix per process and a counter (a request id need
    not be secret; `secrets.token_hex` cost a getrandom() call per request)."""
    return f"{_RID_PREFIX}{next(_rid_count) & 0xFFFFFFFFFFFFFFFF:016x}"


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(send: Callable[[MutableMapping[str, Any]], Awaitable[None]], status: int, body: bytes,
                    headers: dict[str, str]) -> None:
    """A whole JSON response (`body` as encoded)."""
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    await send({"type": "http.response.start", "status": status, "headers": encode_headers(head)})
    await send({"type": "http.response.body", "body": body, "more_body": False})

"""The HTTP client webhooks are sent with, and `[webhooks] block_private_addresses`.

With the setting on, every request's host is resolved here and each address it resolves to
is checked (addresses.py); the request is then sent to the first of those checked addresses,
with the URL's host kept in the Host header and as the TLS server name (SNI, certificate
check). The address connected to is the one checked, so a name that resolves to a public
address when checked and to 127.0.0.1 a moment later (DNS rebinding) cannot reach loopback.
Environment proxies are ignored then (a proxy would make the connect go elsewhere).
Redirects are never followed (worker.post_once), so a 3xx cannot lead inside either.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio

from .addresses import Address, blocked_host, is_blocked, literal_address

USER_AGENT = "gateway-webhooks/0.1"
Resolver = Callable[[str, int], Awaitable[list[str]]]


class BlockedDestination(httpx.ConnectError):
    """The destination is not public and `block_private_addresses` is on."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver, as a connect would use it)."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_address(host: str, port: int, resolver: Resolver | None = None) -> Address:
    """The address to connect to for `host`, or BlockedDestination naming why not.

    Every resolved address must be public: a name with one private address among public
    ones is refused, whichever the connect would have picked."""
    why = blocked_host(host)
    if why is not None:
        raise BlockedDestination(f"{why} ([webhooks] block_private_addresses is on)")
    literal = literal_address(host)
    if literal is not None:
        return literal
    try:
        found = [literal_address(a) for a in await (resolver or resolve)(host, port)]
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from None
    addresses = [a for a in found if a is not None]
    if not addresses:
        raise httpx.ConnectError(f"cannot resolve {host}: no address")
    bad = [a for a in addresses if is_blocked(a)]
    if bad:
        raise BlockedDestination(f"host {host} resolves to {bad[0]}, a private, loopback or otherwise "
                                 "non-public address ([webhooks] block_private_addresses is on)")
    return addresses[0]


class GuardedTransport(httpx.AsyncBaseTransport):
    """Sends each request to a checked address of its host (see the module docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, resolver: Resolver | None = None) -> None:
        self.inner = inner
        self.resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        addr = await checked_address(url.host, port, self.resolver)
        extensions: dict[str, Any] = dict(request.extensions)
        if url.scheme == "https":
            extensions.setdefault("sni_hostname", url.host)
        pinned = httpx.Request(request.method, url.copy_with(host=str(addr)), headers=request.headers,
                               stream=request.stream, extensions=extensions)
        return await self.inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self.inner.aclose()


def webhook_client(*, block_private: bool, resolver: Resolver | None = None) -> httpx.AsyncClient:
    """The client for deliveries and tests (the caller closes it)."""
    if not block_private:
        return httpx.AsyncClient(headers={"User-Agent": USER_AGENT})
    transport = GuardedTransport(httpx.AsyncHTTPTransport(trust_env=False), resolver)
    return httpx.AsyncClient(headers={"User-Agent": USER_AGENT}, transport=transport, trust_env=False)

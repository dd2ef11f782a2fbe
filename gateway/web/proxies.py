"""Trusted reverse proxies: `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from them.

Behind nginx or Caddy every connection comes from the proxy, and the client's address and
scheme arrive in headers that anyone can also send. `[server] trusted_proxies` lists the
proxies' addresses (CIDRs). When the TCP peer is in one of them:
- the client address is the rightmost `X-Forwarded-For` entry that is not itself a trusted
  proxy (each proxy appends the address it saw; entries left of an untrusted one could be
  forged by that client), and it replaces the ASGI scope's `client`;
- the scheme is the last `X-Forwarded-Proto` value (what the nearest proxy says), `https`
  making the scope `https` (`wss` for a WebSocket).
From any other peer both headers change nothing. With no trusted proxies there is no
wrapper at all.

This is the only place those headers are read: everything downstream takes the scope's
`client` and `scheme` (Quart's `request.remote_addr` and `request.scheme`, the access logs,
the session cookie's Secure flag, the WebSocket Origin check, any per-client limit).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from functools import lru_cache
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SECURE = {"http": "https", "websocket": "wss"}
_PLAIN = {"http": "http", "websocket": "ws"}


def parse_address(text: str) -> Address | None:
    """An address from a header entry: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`; else None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self.trusted = lru_cache(maxsize=1024)(self._trusted)

    def _trusted(self, addr: Address) -> bool:
        return any(addr in net for net in self.networks)

    def client(self, peer: str, forwarded_for: list[str]) -> str:
        """The client's address: the peer, or (from a trusted peer) the rightmost untrusted hop."""
        addr = parse_address(peer)
        if addr is None or not self.trusted(addr):
            return peer
        hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            parsed = parse_address(hop)
            if parsed is None:  # garbage: believe nothing beyond it
                break
            addr = parsed
            if not self.trusted(addr):
                break
        return str(addr)

    def peer_trusted(self, peer: str) -> bool:
        addr = parse_address(peer)
        return addr is not None and self.trusted(addr)

    def resolve(self, scope: MutableMapping[str, Any]) -> None:
        """Rewrite `scope["client"]` and `scope["scheme"]` from a trusted peer's headers."""
        peer = (scope.get("client") or ("",))[0]
        if not peer or not self.peer_trusted(peer):
            return
        forwarded_for: list[str] = []
        proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        scope["gateway.peer"] = scope["client"]
        if forwarded_for:
            scope["client"] = (self.client(peer, forwarded_for), 0)
        if proto in ("https", "http"):
            scope["scheme"] = (_SECURE if proto == "https" else _PLAIN)[scope["type"]]


class ProxyAware:
    """ASGI wrapper applying `TrustedProxies.resolve` to HTTP and WebSocket scopes."""

    def __init__(self, app: Any, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies
        self.config = getattr(app, "config", None)  # Hypercorn-level helpers read the app's config (ws_liveness)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any, *rest: Any) -> None:
        if scope["type"] in _SECURE:
            self.proxies.resolve(scope)
        await self.app(scope, receive, send, *rest)


def behind_proxies(app: Any, cidrs: Iterable[str]) -> Any:
    """`app` itself with no trusted proxies, else wrapped."""
    cidrs = tuple(cidrs)
    return ProxyAware(app, TrustedProxies(cidrs)) if cidrs else app

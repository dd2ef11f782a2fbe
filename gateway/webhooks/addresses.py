"""Which webhook destinations `[webhooks] block_private_addresses` refuses. Pure (no I/O).

An address is refused unless it is global (so loopback, private, link-local, CGNAT,
unspecified, reserved and documentation ranges are refused) or if it is multicast; an
IPv4-mapped IPv6 address is judged by its IPv4 address. Host literals are read the way the
C resolver reads them (`inet_aton`), because that is what a connect would use: `127.1`,
`2130706433`, `0x7f000001` and `0177.0.0.1` are all 127.0.0.1. Names are resolved at send
time and the address connected to is the one checked (guard.py); `localhost` and
`*.localhost` are refused without asking the resolver.
"""

from __future__ import annotations

import ipaddress
import re

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


_HEX, _OCT, _DEC = re.compile(r"0[xX][0-9a-fA-F]+"), re.compile(r"0[0-7]*"), re.compile(r"[1-9][0-9]*")


def _part(text: str) -> int | None:
    """One inet_aton part: 0x hex, 0-led octal or decimal."""
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _OCT.fullmatch(text):
        return int(text, 8)
    if _DEC.fullmatch(text):
        return int(text)
    return None


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """`text` as inet_aton reads it (1 to 4 parts; the last fills the remaining bytes), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or any(not p for p in parts):
        return None
    values = [_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    *head, last = nums
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for v in head:
        value = value * 256 + v
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> Address | None:
    """The address a host literal names (IPv6 with or without brackets), else None (a name)."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return parse_ipv4_loose(bare)


def is_blocked(addr: Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not addr.is_global or addr.is_multicast


def blocked_host(host: str) -> str | None:
    """Why a URL host is refused without resolving it, or None (a name is judged at send time)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"host {host} is loopback"
    addr = literal_address(host)
    if addr is not None and is_blocked(addr):
        return f"host {host} is {addr}, a private, loopback or otherwise non-public address"
    return None

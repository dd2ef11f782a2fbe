"""Signed dashboard session tokens (the `gw_session` cookie), signed with itsdangerous.

A token is itsdangerous's URL-safe serialisation of the compact JSON
`{"v":1,"k":key_id,"n":key_name,"t":tier,"i":issued_s,"e":expires_s}`, signed with
HMAC-SHA256 under the server's secret (salt `gw_session.v1`): only cookie-safe characters.
`read_session` returns None for anything that is not a well-formed, correctly signed,
unexpired token; it never raises on client input.

The token names the key by id, not by value: the key itself never leaves the login request.
Whoever checks a session should also confirm the key is still active (revocation).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

COOKIE_NAME = "gw_session"
_SALT = "gw_session.v1"
_MAX_TOKEN = 4096  # a cookie larger than this is not ours


@dataclass(frozen=True, slots=True)
class Session:
    key_id: int
    key_name: str
    tier: str
    issued_s: int
    expires_s: int

    @property
    def expires_at_ms(self) -> int:
        return self.expires_s * 1000


def _serializer(secret: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def make_session(secret: bytes, *, key_id: int, key_name: str, tier: str, now_s: int, ttl_s: int) -> str:
    """A signed token valid from `now_s` until `now_s + ttl_s` (exclusive)."""
    if not secret:
        raise ValueError("the session secret must not be empty")
    payload = {"v": 1, "k": key_id, "n": key_name, "t": tier, "i": now_s, "e": now_s + ttl_s}
    return str(_serializer(secret).dumps(payload))


def read_session(secret: bytes, token: str | None, now_s: int) -> Session | None:
    """The session a token carries, or None (missing, malformed, forged, tampered or expired)."""
    if not token or not secret or len(token) > _MAX_TOKEN:
        return None
    try:
        data: Any = _serializer(secret).loads(token)
    except (BadData, UnicodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    key_id, name, tier, issued, expires = (data.get(f) for f in ("k", "n", "t", "i", "e"))
    if not (_is_int(key_id) and isinstance(name, str) and isinstance(tier, str) and _is_int(issued)
            and _is_int(expires)):
        return None
    assert isinstance(key_id, int) and isinstance(issued, int) and isinstance(expires, int)
    if now_s >= expires:
        return None
    return Session(key_id=key_id, key_name=name, tier=tier, issued_s=issued, expires_s=expires)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""Signed dashboard session tokens (the `gw_session` cookie). Pure, standard library only.

A token is `PAYLOAD.SIGNATURE`: PAYLOAD is the base64url (unpadded) compact JSON
`{"v":1,"k":key_id,"n":key_name,"t":tier,"i":issued_s,"e":expires_s}` and SIGNATURE the
base64url HMAC-SHA256 of `gw_session.v1.` + PAYLOAD under the server's secret. Both parts
use only cookie-safe characters. `read_session` returns None for anything that is not a
well-formed, correctly signed, unexpired token; it never raises on client input.

The token names the key by id, not by value: the key itself never leaves the login request.
Whoever checks a session should also confirm the key is still active (revocation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

COOKIE_NAME = "gw_session"
_CONTEXT = b"gw_session.v1."
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


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, _CONTEXT + body.encode("ascii"), hashlib.sha256).digest())


def make_session(secret: bytes, *, key_id: int, key_name: str, tier: str, now_s: int, ttl_s: int) -> str:
    """A signed token valid from `now_s` until `now_s + ttl_s` (exclusive)."""
    if not secret:
        raise ValueError("the session secret must not be empty")
    payload = {"v": 1, "k": key_id, "n": key_name, "t": tier, "i": now_s, "e": now_s + ttl_s}
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return f"{body}.{_sign(secret, body)}"


def read_session(secret: bytes, token: str | None, now_s: int) -> Session | None:
    """The session a token carries, or None (missing, malformed, forged, tampered or expired)."""
    if not token or not secret or len(token) > _MAX_TOKEN:
        return None
    body, dot, sig = token.partition(".")
    if not dot or not body or not sig:
        return None
    try:
        expected = _sign(secret, body)
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace")):
        return None
    try:
        data = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
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

"""Webhook secrets and signatures. Pure (stdlib only), so receivers can copy it.

Header: `X-Gateway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`.
The key is the whole secret string (`whsec_...`, UTF-8); the message is the timestamp, a
dot, and the raw request body bytes exactly as received. Receivers should reject a
timestamp more than `TOLERANCE_S` away from their clock (replay protection).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    """`whsec_` + 32 random bytes, base64url without padding (43 characters)."""
    return SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _bytes(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """Hex HMAC-SHA256 of `f"{timestamp}.{body}"` keyed by the secret."""
    message = f"{timestamp}.".encode() + _bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: str | bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int | None, list[str]]:
    """(t, [v1 signatures]) from a signature header; t is None when missing or malformed."""
    t: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                t = int(value)
            except ValueError:
                return None, []
        elif name == "v1" and value:
            sigs.append(value)
    return t, sigs


def verify(secret: str, header: str, body: str | bytes, *, now: float, tolerance_s: float = TOLERANCE_S) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is within tolerance of `now`."""
    t, sigs = parse_header(header)
    if t is None or not sigs or abs(now - t) > tolerance_s:
        return False
    expected = sign(secret, t, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)

"""Signed session tokens (pure) and the same-origin rule used by cookie-authenticated routes."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from itsdangerous import URLSafeSerializer

from gateway.core.filters import Catalog, Filter
from gateway.sessions import Session, make_session, read_session
from gateway.web.session import effective_scheme, same_origin
from gateway.web.ws_messages import BadMessage, apply_subscribe, apply_unsubscribe, parse_message, resume_id

SECRET = b"s" * 32
NOW = 1_778_000_000


def token(**kw: object) -> str:
    args: dict[str, object] = {"key_id": 7, "key_name": "bot1", "tier": "business", "now_s": NOW, "ttl_s": 3600}
    args.update(kw)
    return make_session(SECRET, **args)  # type: ignore[arg-type]


def test_round_trip() -> None:
    s = read_session(SECRET, token(), NOW + 10)
    assert s == Session(key_id=7, key_name="bot1", tier="business", issued_s=NOW, expires_s=NOW + 3600)
    assert s.expires_at_ms == (NOW + 3600) * 1000


def test_token_is_cookie_safe() -> None:
    t = token(key_name="naïve ; name=\"x\"")
    assert all(c.isalnum() or c in "-_." for c in t)
    s = read_session(SECRET, t, NOW)
    assert s is not None and s.key_name == "naïve ; name=\"x\""


def test_expiry_is_exclusive() -> None:
    assert read_session(SECRET, token(), NOW + 3599) is not None
    assert read_session(SECRET, token(), NOW + 3600) is None
    assert read_session(SECRET, token(now_s=NOW - 7200), NOW) is None


def test_wrong_secret_is_rejected() -> None:
    assert read_session(b"other-secret", token(), NOW) is None


def test_tampered_payload_is_rejected() -> None:
    body, sig = token().rsplit(".", 1)
    data = {"v": 1, "k": 7, "n": "bot1", "t": "enterprise", "i": NOW, "e": NOW + 3600}
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    assert read_session(SECRET, f"{forged}.{sig}", NOW) is None
    assert read_session(SECRET, f"{body}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}", NOW) is None
    other_salt = URLSafeSerializer(SECRET, salt="another", signer_kwargs={"digest_method": hashlib.sha256})
    assert read_session(SECRET, str(other_salt.dumps(data)), NOW) is None  # signed for something else


@pytest.mark.parametrize("bad", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "x" * 5000, None])
def test_garbage_is_rejected_without_raising(bad: str | None) -> None:
    assert read_session(SECRET, bad, NOW) is None


def test_signed_but_malformed_payload_is_rejected() -> None:
    from gateway.sessions import _serializer

    for payload in ([], "not a dict", {"v": 2}, {"v": 1, "k": True, "n": "x", "t": "b", "i": 0, "e": 2 * NOW}):
        assert read_session(SECRET, str(_serializer(SECRET).dumps(payload)), NOW) is None


def test_empty_secret_cannot_sign() -> None:
    with pytest.raises(ValueError):
        make_session(b"", key_id=1, key_name="x", tier="free", now_s=NOW, ttl_s=10)


@pytest.mark.parametrize(("origin", "host", "scheme", "ok"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", "http", True),
    ("http://LOCALHOST:8080", "localhost:8080", "http", True),
    ("https://odds.example", "odds.example", "https", True),
    ("https://odds.example:443", "odds.example", "https", True),
    ("http://odds.example", "odds.example:80", "http", True),
    ("http://127.0.0.1:8081", "127.0.0.1:8080", "http", False),
    ("https://127.0.0.1:8080", "127.0.0.1:8080", "http", False),
    ("http://evil.example", "127.0.0.1:8080", "http", False),
    ("http://127.0.0.1:8080.evil.example", "127.0.0.1:8080", "http", False),
    ("null", "127.0.0.1:8080", "http", False),
    (None, "127.0.0.1:8080", "http", False),
    ("http://[::1]:8080", "[::1]:8080", "http", True),
    ("http://x:notaport", "x:80", "http", False),
])
def test_same_origin(origin: str | None, host: str, scheme: str, ok: bool) -> None:
    assert same_origin(origin, host, scheme) is ok


def test_effective_scheme_maps_websocket_schemes() -> None:
    # X-Forwarded-Proto is believed only from [server] trusted_proxies, by rewriting the
    # scope's scheme before any handler runs (tests/test_proxies.py)
    assert effective_scheme("ws") == "http" and effective_scheme("http") == "http"
    assert effective_scheme("wss") == "https" and effective_scheme("https") == "https"


CATALOG = Catalog(sports={"basketball_nba"}, bookmakers={"pinnacle", "fanduel"}, markets={"h2h", "totals"})


def test_subscribe_replaces_only_the_fields_given() -> None:
    base = Filter(bookmakers=frozenset({"pinnacle"}), live_only=True)
    sub = apply_subscribe({"type": "subscribe", "event_id": "E1"}, base, CATALOG)
    assert sub.filter.event_ids == {"E1"} and sub.filter.bookmakers == {"pinnacle"} and sub.filter.live_only
    again = apply_subscribe({"type": "subscribe", "event_ids": ["E2", "E3"], "markets": "h2h,totals",
                             "kinds": ["props"], "threshold": 25, "direction": "toward_underdog"}, sub.filter, CATALOG)
    f = again.filter
    assert f.event_ids == {"E2", "E3"} and f.markets == {"h2h", "totals"} and f.kinds == {"prop"}
    assert (f.threshold, f.direction) == (25, "toward_dog")
    assert apply_subscribe({"type": "subscribe", "event_id": "*"}, f, CATALOG).filter.event_ids is None
    assert apply_unsubscribe(f).event_ids is None and apply_unsubscribe(f).markets == f.markets


@pytest.mark.parametrize("msg", [
    {"type": "subscribe", "bookmakers": ["nobook"]}, {"type": "subscribe", "markets": 3},
    {"type": "subscribe", "event_id": ""}, {"type": "subscribe", "event_id": True},
    {"type": "subscribe", "threshold": 0}, {"type": "subscribe", "direction": "up"},
    {"type": "subscribe", "snapshot": "yes"}, {"type": "subscribe", "event_ids": ["x" * 300]},
])
def test_bad_subscribe_fields(msg: dict[str, object]) -> None:
    with pytest.raises(BadMessage):
        apply_subscribe(msg, Filter(), CATALOG)


@pytest.mark.parametrize("raw", ["{", "[]", "1", '{"type": 1}', '{"type": "x"}', b"\xff", "x" * 70000])
def test_parse_message_rejects(raw: str | bytes) -> None:
    with pytest.raises(BadMessage):
        parse_message(raw)


def test_resume_id() -> None:
    assert resume_id({"last_event_id": 5}) == 5 and resume_id({"last_event_id": "12"}) == 12
    for bad in (None, -1, "x", 1.5, True):
        with pytest.raises(BadMessage):
            resume_id({"last_event_id": bad})

"""Webhook signing and the pure webhook model: no server, no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from gateway.core.filters import Catalog, ParamError
from gateway.webhooks import model
from gateway.webhooks.model import drop_message, params_from_fields, render_body, validate_url
from gateway.webhooks.signing import new_secret, parse_header, sign, signature_header, verify

SECRET = "whsec_" + "A" * 43
BODY = '{"id":"dlv_1","event_type":"odds_drop"}'


def test_secret_format_and_randomness() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) == 49
    raw = base64.urlsafe_b64decode(a[6:] + "=")
    assert len(raw) == 32


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY.encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == expected == sign(SECRET, 1700000000, BODY.encode())
    assert signature_header(SECRET, 1700000000, BODY) == f"t=1700000000,v1={expected}"


def test_verify_accepts_only_the_right_secret_body_and_time() -> None:
    header = signature_header(SECRET, 1700000000, BODY)
    assert verify(SECRET, header, BODY, now=1700000100)
    assert verify(SECRET, header, BODY.encode(), now=1699999800)
    assert not verify(SECRET, header, BODY + " ", now=1700000000)  # body changed
    assert not verify(new_secret(), header, BODY, now=1700000000)  # other secret
    assert not verify(SECRET, header, BODY, now=1700000301)  # too old: replay
    assert not verify(SECRET, "t=abc,v1=00", BODY, now=1700000000)
    assert not verify(SECRET, "v1=" + sign(SECRET, 1700000000, BODY), BODY, now=1700000000)  # no t
    two = f"t=1700000000,v1={'0' * 64},v1={sign(SECRET, 1700000000, BODY)}"
    assert verify(SECRET, two, BODY, now=1700000000)  # any listed signature may match
    assert parse_header(" t=5 , v1=ab ") == (5, ["ab"])


@pytest.mark.parametrize("url", ["http://127.0.0.1:8123/hook", "https://hooks.slack.com/services/T0/B0/x",
                                 "https://[::1]:9000/", "HTTPS://Example.com/a?b=c"])
def test_good_urls(url: str) -> None:
    assert validate_url(f"  {url} ") == url


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://example.com/", "http or https"), ("example.com/hook", "http or https"),
    ("https://u:p@example.com/", "credentials"), ("https://u@example.com/", "credentials"),
    ("https:///x", "no host"), ("http://example.com:0/", "port 0"), ("http://[::1/", "not a valid URL"),
    ("https://example.com/\x00", "control"), (42, "required"), ("", "required"),
    ("https://e.com/" + "x" * 2048, "too long"),
])
def test_bad_urls_name_the_reason(url: object, words: str) -> None:
    with pytest.raises(ParamError) as info:
        validate_url(url)
    assert info.value.param == "url" and words in info.value.message


def test_private_addresses_blocked_only_when_asked() -> None:
    assert validate_url("http://localhost:9/x")
    for url in ("http://localhost:9/x", "http://127.0.0.1/x", "http://10.1.2.3/", "http://[::1]/", "http://169.254.1.1/"):
        with pytest.raises(ParamError):
            validate_url(url, block_private=True)
    assert validate_url("https://example.com/", block_private=True)


def test_json_fields_become_stream_params() -> None:
    assert params_from_fields({"sports": "a,b", "threshold": 15, "bookmakers": ["x", "y"], "markets": None}) == {
        "sports": ["a,b"], "threshold": ["15"], "bookmakers": ["x", "y"]}
    for bad in ({"threshold": True}, {"threshold": 1.5}, {"bookmakers": [1]}, {"kinds": {"a": 1}}):
        with pytest.raises(ParamError) as info:
            params_from_fields(bad)
        assert info.value.param == next(iter(bad))


def test_compiled_filters_match_like_the_stream() -> None:
    catalog = Catalog(sports={"basketball_nba", "icehockey_nhl"}, bookmakers={"pinnacle", "fanduel"},
                      markets={"h2h"})
    normalised, flt, sports = model.compile_filters({"sports": "basketball_nba", "threshold": "15"}, catalog)
    assert sports == frozenset({"basketball_nba"}) and flt.threshold == 15
    assert normalised["sports"] == ["basketball_nba"] and normalised["direction"] == "both"
    assert model.compile_filters({}, catalog)[0]["sports"] == "all"
    with pytest.raises(ParamError) as info:
        model.compile_filters({"sports": ["basketball_nba", "cricket_x"]}, catalog)
    assert info.value.param == "sports"


DROP = {"type": "odds_drop", "bookmaker": "pinnacle", "kind": "game", "side": "h2h_home", "market_key": "h2h",
        "prev": -110, "new": -120, "point": None, "direction": "toward_favorite",
        "home_team": "Los Angeles Lakers", "away_team": "Golden State Warriors"}


def test_readable_messages() -> None:
    assert drop_message(DROP) == ("pinnacle h2h_home -110 -> -120 (toward_favorite) "
                                  "Los Angeles Lakers vs Golden State Warriors")
    dog = {**DROP, "side": "spread_away", "point": 4.5, "prev": 105, "new": 120, "direction": "toward_dog"}
    assert drop_message(dog).startswith("pinnacle spread_away 4.5 +105 -> +120 (toward_dog)")
    prop = {**DROP, "kind": "prop", "side": "over", "market_key": "player_points", "player": "LeBron James",
            "line": 24.5}
    assert drop_message(prop).startswith("pinnacle LeBron James player_points over 24.5 -110 -> -120")


def test_bodies_per_format() -> None:
    kw = {"delivery_id": "dlv_1", "event_type": "odds_drop", "timestamp_ms": 5, "data": DROP}
    assert json.loads(render_body("json", **kw)) == {"id": "dlv_1", "event_type": "odds_drop",  # type: ignore[arg-type]
                                                     "timestamp_ms": 5, "data": DROP}
    assert json.loads(render_body("slack", **kw)) == {"text": drop_message(DROP)}  # type: ignore[arg-type]
    assert json.loads(render_body("discord", **kw)) == {"content": drop_message(DROP)}  # type: ignore[arg-type]

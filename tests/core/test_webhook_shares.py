"""The webhook delivery pool shared by keys (issue 14.6), and which destinations are blocked (14.8)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from gateway.webhooks.addresses import blocked_host, is_blocked, literal_address, parse_ipv4_loose
from gateway.webhooks.shares import Shares, fair_order


def test_one_key_holds_at_most_its_share() -> None:
    s = Shares(total=20, per_key=5)
    for _ in range(5):
        s.take("noisy")
    assert not s.can_take("noisy") and s.can_take("quiet")
    with pytest.raises(RuntimeError):
        s.take("noisy")
    s.give("noisy")
    assert s.can_take("noisy") and s.held("noisy") == 4 and s.in_use == 4


def test_the_reserve_is_for_keys_that_hold_nothing() -> None:
    """Five keys stuck at dead endpoints cannot fill the pool: a key with nothing in flight
    still finds a slot."""
    s = Shares(total=20, per_key=5)
    assert s.reserve == 5
    stuck = [f"dead{i}" for i in range(5)]
    for key in stuck:
        while s.can_take(key):
            s.take(key)
    assert [s.held(k) for k in stuck] == [5, 5, 5, 1, 1]  # the last two got one slot each from the reserve
    assert s.can_take("quiet") and not any(s.can_take(k) for k in stuck)
    s.take("quiet")
    assert s.can_take("another") and not s.can_take("quiet")  # quiet holds one now: the reserve is not for it


def test_small_pools() -> None:
    s = Shares(total=1, per_key=1)
    assert s.reserve == 0
    s.take("a")
    assert s.full and not s.can_take("b")
    s.give("a")
    with pytest.raises(RuntimeError):
        s.give("a")
    with pytest.raises(ValueError):
        Shares(total=2, per_key=3)


def test_fair_order_interleaves_keys_fewest_held_first() -> None:
    rows = [("noisy", 1), ("noisy", 2), ("noisy", 3), ("quiet", 4), ("other", 5), ("quiet", 6)]
    held = {"noisy": 5, "quiet": 0, "other": 1}
    got = fair_order(rows, key=lambda r: r[0], held=lambda k: held[k])
    assert got == [("quiet", 4), ("other", 5), ("noisy", 1), ("quiet", 6), ("noisy", 2), ("noisy", 3)]
    assert fair_order([], key=lambda r: r, held=lambda k: 0) == []


LOOPBACK_FORMS = ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.0.1", "0",
                  "0.0.0.0", "[::1]", "::1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_every_spelling_of_loopback_is_blocked(host: str) -> None:
    assert blocked_host(host) is not None


@pytest.mark.parametrize("host", ["10.0.0.1", "012.0.0.1", "0xa.1", "192.168.1.1", "169.254.169.254",
                                  "100.64.0.1", "172.16.0.1", "[fe80::1]", "[fd00::1]", "224.0.0.1", "localhost",
                                  "LOCALHOST.", "x.localhost", "192.0.2.1"])
def test_private_and_special_addresses_are_blocked(host: str) -> None:
    assert blocked_host(host) is not None


@pytest.mark.parametrize("host", ["8.8.8.8", "example.com", "1.1", "[2606:4700::1111]", "hooks.slack.com",
                                  "1.2.3.4.5", "256.0.0.1", "08.0.0.1", "1e3"])
def test_public_addresses_and_names_pass_the_literal_check(host: str) -> None:
    assert blocked_host(host) is None


@pytest.mark.parametrize("text", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "1.2.3", "0xff.0xff.0xffff",
                                  "4294967295", "00", "0x", "1.2.3.4.5", "256.1.1.1", "1.2.65536", "08", "0x1g",
                                  "-1", " 1", "1..2", "", "0x-1", "0-7", "1.0x", "0x7f.-1", "\u0661"])
def test_loose_ipv4_reads_like_inet_aton(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    if text.startswith(" "):
        expected = None  # inet_aton skips leading spaces; a URL host never has them
    assert parse_ipv4_loose(text) == expected


def test_mapped_addresses_are_judged_by_their_ipv4() -> None:
    mapped = literal_address("::ffff:8.8.8.8")
    assert mapped is not None and not is_blocked(mapped)

"""Client JSON (issue 14.8): bounded nesting, UTF-8 only, lone surrogates found with their path."""

from __future__ import annotations

import json
import time

import pytest

from gateway.core.client_json import MAX_DEPTH, ClientJsonError, depth_exceeds, loads, unencodable_path


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 999, 30_000, 100_000])
def test_deep_nesting_is_refused_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(ClientJsonError, match="nested too deeply"):
        loads(nested(depth))
    with pytest.raises(ClientJsonError, match="nested too deeply"):
        loads('{"a":' * depth + "1" + "}" * depth)


def test_unterminated_deep_nesting_is_refused_too() -> None:
    with pytest.raises(ClientJsonError, match="nested too deeply"):
        loads(b"[" * 100_000)


def test_nesting_up_to_the_limit_parses() -> None:
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    assert loads(nested(5), max_depth=5) is not None
    with pytest.raises(ClientJsonError):
        loads(nested(6), max_depth=5)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps(["[" * 1000, {"k": "{" * 1000}])
    assert loads(text) == ["[" * 1000, {"k": "{" * 1000}]


def test_wide_is_not_deep() -> None:
    wide = json.dumps([[{"a": [1, 2]}] for _ in range(20_000)])
    assert len(loads(wide)) == 20_000


@pytest.mark.parametrize(("value", "limit", "deep"), [
    (1, 0, False), ([], 0, True), ([], 1, False), ([[]], 1, True), ({"a": {"b": []}}, 3, False),
    ({"a": {"b": []}}, 2, True), ([1, [2, [3]]], 3, False), ([1, [2, [3]]], 2, True),
])
def test_depth_exceeds(value: object, limit: int, deep: bool) -> None:
    assert depth_exceeds(value, limit) is deep


def test_invalid_utf8_bytes_name_the_offset() -> None:
    with pytest.raises(ClientJsonError, match=r"not UTF-8 text \(invalid byte at offset 2\)"):
        loads(b'["\xff"]')
    with pytest.raises(ClientJsonError, match="not UTF-8"):
        loads('["\ud800"]'.encode("utf-8", "surrogatepass"))  # a surrogate encoded raw is not UTF-8 either


def test_not_json_and_huge_ints() -> None:
    with pytest.raises(ClientJsonError, match="not valid JSON"):
        loads(b"{nope")
    with pytest.raises(ClientJsonError, match="not valid JSON"):
        loads("9" * 5000)  # past Python's int digit limit: a ValueError, not a 500
    with pytest.raises(ClientJsonError, match="too long"):
        loads("[1]", max_chars=2)


def test_lone_surrogates_refused_only_when_strict() -> None:
    text = '{"type": "subscribe", "event_ids": ["ok", "bad \\ud800"]}'
    assert loads(text)["event_ids"][1] == "bad \ud800"
    with pytest.raises(ClientJsonError, match=r"at event_ids\[1\]: a lone UTF-16 surrogate") as info:
        loads(text, strict_text=True)
    info.value.message.encode("utf-8")
    with pytest.raises(ClientJsonError, match="at <key>"):
        loads('{"\\udfff": 1}', strict_text=True)
    assert loads('{"emoji": "\\ud83c\\udfc0"}', strict_text=True) == {"emoji": "\U0001f3c0"}  # a pair is fine


def test_unencodable_path() -> None:
    assert unencodable_path({"a": [1, {"b": "x"}]}) is None
    assert unencodable_path({"a": [1, {"b": "\udc00"}]}) == "a[1].b"
    assert unencodable_path("\ud800") == ""


def test_the_depth_check_costs_at_most_twice_the_parse() -> None:
    """A 2 MB body of 15,000 flat quotes: the depth walk adds at most twice the parse's own
    time (it adds about 1.3 times here: it visits every dict and value, the C parse is fast).

    Timed in CPU time, best of 5 interleaved rounds: wall time on a loaded machine counts the
    slices other processes ran in (one preempted round made a single-shot wall-clock
    comparison fail), and the best round is the cost of the work, not of the scheduler or of
    a garbage collection that happened to fall into it."""
    row = {"sport_key": "basketball_nba", "event_id": "e", "home_team": "A", "away_team": "B", "price": -110,
           "point": None, "player": None}
    text = json.dumps([row] * 15_000)
    parse_s = total_s = float("inf")
    for _ in range(5):
        started = time.process_time()
        json.loads(text)
        parse_s = min(parse_s, time.process_time() - started)
        started = time.process_time()
        loads(text)
        total_s = min(total_s, time.process_time() - started)
    assert total_s < 3 * parse_s + 0.005, (total_s, parse_s)  # measured: ~2.3x, 2.5x at most under load

"""The hub: topics, wildcard, filters, never blocking, slow consumers cut off."""

from __future__ import annotations

import trio

from gateway.core.filters import Filter
from gateway.core.frames import DROP, ODDS, Frame
from gateway.hub import SLOW_CONSUMER, Hub


def drop(seq: int, sport: str = "basketball_nba", delta: int = 10, book: str = "pinnacle") -> Frame:
    return Frame(seq=seq, stream=DROP, payload={
        "type": "odds_drop", "sport_key": sport, "event_id": "e", "bookmaker": book, "kind": "game",
        "market_key": "h2h", "delta_cents": delta, "direction": "toward_favorite"})


def odds(seq: int, sport: str = "basketball_nba") -> Frame:
    return Frame(seq=seq, stream=ODDS, payload={"type": "odds_update", "sport_key": sport, "markets": ["h2h"],
                                                "data": [{"event_id": "e", "bookmaker": "pinnacle", "kind": "game"}]})


def drain(sub: object) -> list[int | None]:
    out = []
    while True:
        try:
            out.append(sub.receive.receive_nowait().seq)  # type: ignore[attr-defined]
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


async def test_topics_wildcard_and_filters() -> None:
    hub = Hub(16)
    nba = hub.subscribe([DROP], frozenset({"basketball_nba"}), Filter(threshold=10))
    both = hub.subscribe([DROP, ODDS], None, Filter(threshold=20))
    pinnacle = hub.subscribe([DROP], frozenset({"basketball_nba", "soccer_epl"}),
                             Filter(threshold=1, bookmakers=frozenset({"pinnacle"})))
    hub.publish([drop(1), drop(2, "soccer_epl", 25), drop(3, delta=5), odds(4), drop(5, book="bet365")])
    assert drain(nba) == [1, 5]
    assert drain(both) == [2, 4]
    assert drain(pinnacle) == [1, 2, 3]
    assert hub.statistics().delivered == 7


async def test_slow_consumer_is_cut_and_others_unaffected() -> None:
    hub = Hub(16)
    slow = hub.subscribe([DROP], None, Filter(threshold=1))
    fast = hub.subscribe([DROP], None, Filter(threshold=1))
    for i in range(1, 41):
        hub.publish([drop(i)])
        drain(fast)
    assert slow.cut_reason == SLOW_CONSUMER and len(hub) == 1
    assert hub.statistics().slow_consumer_cuts == 1
    assert len(drain(slow)) == 16  # what was queued before the cut; then the channel ends
    hub.publish([drop(41)])
    assert drain(fast) == [41]


async def test_unsubscribe_is_idempotent_and_close_all() -> None:
    hub = Hub(4)
    a = hub.subscribe([DROP], frozenset({"x"}), Filter())
    hub.unsubscribe(a)
    hub.unsubscribe(a)
    b = hub.subscribe([DROP], None, Filter())
    hub.close_all()
    assert len(hub) == 0 and b.cut_reason == "shutdown"


async def test_subscribers_with_the_same_request_share_a_group_and_its_encoding() -> None:
    hub = Hub(16)
    flt = Filter(threshold=10)
    subs = [hub.subscribe([DROP], frozenset({"basketball_nba"}), flt) for _ in range(3)]
    other = hub.subscribe([DROP], frozenset({"basketball_nba"}), Filter(threshold=20))
    assert hub.statistics().groups == 2
    calls: list[tuple[list[int | None], int]] = []

    def deliver(frames: list[Frame], encoded: dict[object, bytes]) -> bool:
        data = encoded.get("enc")
        if data is None:
            data = encoded["enc"] = b"x"  # what a writer encodes once per group
            calls.append(([f.seq for f in frames], len(encoded)))
        return True

    for sub in subs:
        sub.deliver = deliver
    hub.publish([drop(1), drop(2, delta=25), drop(3, sport="soccer_epl")])
    assert calls == [([1, 2], 1)]  # one encoding for the three subscribers
    assert drain(other) == [2]
    assert hub.statistics().delivered == 3 * 2 + 1
    # a live filter change moves a subscriber to another group, from the next publish on
    hub.set_filter(subs[0], Filter(threshold=20))
    subs[0].deliver = None
    hub.publish([drop(4), drop(5, delta=30)])
    assert drain(subs[0]) == [5] and drain(other) == [5]
    assert hub.statistics().groups == 2
    for sub in [*subs, other]:
        hub.unsubscribe(sub)
    assert hub.statistics().groups == 0 and not hub._topics and not hub._wildcard

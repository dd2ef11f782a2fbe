from gateway.core.budget import TokenBucket


def test_a_burst_then_the_rate() -> None:
    b = TokenBucket(rate=2, burst=5, now=0.0)
    assert [b.take(1, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not b.take(1, 0.4)  # 0.8 tokens back
    assert b.take(1, 0.5)
    assert b.take(2, 1.5) and not b.take(1, 1.5)


def test_a_costly_message_needs_its_cost_and_spends_nothing_when_refused() -> None:
    b = TokenBucket(rate=1, burst=10, now=0.0)
    assert b.take(10, 0.0)
    assert not b.take(10, 5.0)  # 5 tokens: not enough, none spent
    assert b.take(5, 5.0)


def test_tokens_never_pass_the_burst() -> None:
    b = TokenBucket(rate=100, burst=3, now=0.0)
    assert b.take(3, 1000.0) and not b.take(1, 1000.0)

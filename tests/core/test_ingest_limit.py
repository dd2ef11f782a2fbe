"""Ingest's own limit (issue 19), without an event loop: two buckets per key, requests and rows."""

from __future__ import annotations

from gateway.core.ingest_limit import REQUESTS, ROWS, IngestLimiter, burst_of


def test_requests_come_in_bursts_of_one_second_then_at_the_rate() -> None:
    lim = IngestLimiter()
    assert all(lim.request(1, 50, 0.0) is None for _ in range(50))
    refusal = lim.request(1, 50, 0.0)
    assert refusal is not None
    assert (refusal.limit, refusal.per_s, refusal.burst, refusal.retry_s) == (REQUESTS, 50, 50, 1)
    assert lim.request(1, 50, 0.02) is None  # one token back after 1/50 s
    assert lim.request(1, 50, 0.02) is not None
    assert lim.request(2, 50, 0.0) is None  # another key has its own bucket


def test_small_rates_still_allow_a_burst_of_ten() -> None:
    lim = IngestLimiter()
    assert burst_of(5) == 10
    assert [lim.request(1, 5, 0.0) is None for _ in range(11)] == [True] * 10 + [False]


def test_200_one_quote_requests_a_second_fit_the_enterprise_tier() -> None:
    """What a feeder at 200/s sent (899 of 3,000 refused when ingest counted as REST)."""
    lim = IngestLimiter()
    t = 0.0
    for _ in range(3000):
        assert lim.request(1, 1000, t) is None and lim.rows(1, 1, 100_000, t) is None
        t += 1 / 200


def test_a_batch_bigger_than_the_bucket_is_taken_and_owed() -> None:
    lim = IngestLimiter()
    assert lim.rows(1, 5000, 1000, 0.0) is None  # needs only a full bucket
    refusal = lim.rows(1, 1, 1000, 0.5)  # 4,000 owed, 500 back: still 3,500 short
    assert refusal is not None and refusal.limit == ROWS and refusal.retry_s == 4
    assert lim.rows(1, 1, 1000, 4.01) is None  # the debt is paid at 1,000 rows/s


def test_a_tier_change_takes_effect_at_once() -> None:
    lim = IngestLimiter()
    for _ in range(10):
        assert lim.request(1, 10, 0.0) is None
    assert lim.request(1, 10, 0.0) is not None
    assert lim.request(1, 1000, 0.01) is None  # the new rate refills faster (10 tokens/10 ms)


def test_quota_reports_what_may_be_sent_now() -> None:
    lim = IngestLimiter()
    assert lim.quota(1, 50, 0.0) == (50, 0)
    for _ in range(25):
        lim.request(1, 50, 0.0)
    assert lim.quota(1, 50, 0.0) == (25, 1)

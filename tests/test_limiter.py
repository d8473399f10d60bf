"""passage.limiter: failures per source IP in a fixed window, driven by an injected clock."""

from __future__ import annotations

import ipaddress

import pytest

from passage.limiter import AnswerLimiter, FailureLimiter, source_key

T0 = 1_700_000_000.0


def test_blocks_after_limit_failures_in_the_window() -> None:
    limiter = FailureLimiter(limit=3, window=60.0)
    for n in range(2):
        limiter.record_failure("198.51.100.7", T0 + n)
        assert not limiter.blocked("198.51.100.7", T0 + n)
    limiter.record_failure("198.51.100.7", T0 + 2)
    assert limiter.blocked("198.51.100.7", T0 + 2)
    assert limiter.blocked("198.51.100.7", T0 + 59.9)


def test_other_ips_are_not_blocked() -> None:
    limiter = FailureLimiter(limit=1, window=60.0)
    limiter.record_failure("198.51.100.7", T0)
    assert limiter.blocked("198.51.100.7", T0)
    assert not limiter.blocked("198.51.100.8", T0)
    assert not limiter.blocked("2001:db8::7", T0)


def test_unblocks_when_the_window_ends() -> None:
    limiter = FailureLimiter(limit=2, window=60.0)
    limiter.record_failure("198.51.100.7", T0)
    limiter.record_failure("198.51.100.7", T0 + 10)
    assert limiter.blocked("198.51.100.7", T0 + 59.999)
    assert not limiter.blocked("198.51.100.7", T0 + 60)
    # The next failure opens a fresh window with a count of one.
    limiter.record_failure("198.51.100.7", T0 + 61)
    assert not limiter.blocked("198.51.100.7", T0 + 61)
    limiter.record_failure("198.51.100.7", T0 + 62)
    assert limiter.blocked("198.51.100.7", T0 + 62)


def test_failures_in_an_old_window_do_not_count() -> None:
    limiter = FailureLimiter(limit=2, window=10.0)
    limiter.record_failure("198.51.100.7", T0)
    limiter.record_failure("198.51.100.7", T0 + 10)
    assert not limiter.blocked("198.51.100.7", T0 + 10)


def test_forget_expired_drops_ended_windows_only() -> None:
    limiter = FailureLimiter(limit=5, window=60.0)
    limiter.record_failure("198.51.100.1", T0)
    limiter.record_failure("198.51.100.2", T0 + 30)
    limiter.forget_expired(T0 + 59)
    assert len(limiter) == 2
    limiter.forget_expired(T0 + 60)
    assert len(limiter) == 1
    limiter.forget_expired(T0 + 90)
    assert len(limiter) == 0


def test_record_failure_forgets_expired_windows_as_it_goes() -> None:
    limiter = FailureLimiter(limit=5, window=60.0)
    for n in range(100):
        limiter.record_failure(f"198.51.100.{n}", T0)
    limiter.record_failure("203.0.113.1", T0 + 61)
    assert len(limiter) == 1


def test_memory_is_bounded_under_a_flood_of_distinct_ips() -> None:
    limiter = FailureLimiter(limit=3, window=60.0, max_tracked=1000)
    for n in range(100_000):
        ip = str(ipaddress.IPv4Address(0x0A000000 + n))
        limiter.record_failure(ip, T0 + n / 100_000)
        assert len(limiter) <= 1000
    assert len(limiter) == 1000
    # The newest stay tracked; the oldest were evicted.
    assert "10.1.134.159" in limiter._windows  # 0x0A000000 + 99_999
    assert "10.0.0.0" not in limiter._windows


def test_default_bound_holds_for_100k_ips() -> None:
    limiter = FailureLimiter(limit=3, window=60.0)
    for n in range(100_000):
        limiter.record_failure(str(ipaddress.IPv6Address((0x2001_0DB8 << 96) + n)), T0)
    assert len(limiter) == 65536


def test_a_blocked_ip_stays_blocked_while_others_churn_below_the_bound() -> None:
    limiter = FailureLimiter(limit=1, window=60.0, max_tracked=10)
    limiter.record_failure("198.51.100.7", T0)
    for n in range(9):
        limiter.record_failure(f"203.0.113.{n}", T0 + 1)
    assert limiter.blocked("198.51.100.7", T0 + 2)


def test_limit_zero_never_blocks_and_tracks_nothing() -> None:
    limiter = FailureLimiter(limit=0, window=60.0)
    for _ in range(10):
        limiter.record_failure("198.51.100.7", T0)
    assert not limiter.blocked("198.51.100.7", T0)
    assert len(limiter) == 0


@pytest.mark.parametrize(
    ("limit", "window", "max_tracked"), [(-1, 60.0, 10), (1, 0.0, 10), (1, -1.0, 10), (1, 60.0, 0)]
)
def test_bad_parameters_are_refused(limit: int, window: float, max_tracked: int) -> None:
    with pytest.raises(ValueError, match="FailureLimiter"):
        FailureLimiter(limit, window, max_tracked)


# -- AnswerLimiter: a token bucket per source for unauthenticated answers --------


def test_answers_a_burst_then_the_rate() -> None:
    limiter = AnswerLimiter(rate=2.0, burst=3)
    assert [limiter.allow("198.51.100.7", T0) for _ in range(4)] == [True, True, True, False]
    assert not limiter.allow("198.51.100.7", T0 + 0.49)
    assert limiter.allow("198.51.100.7", T0 + 0.5)  # one token back after 1/rate
    assert not limiter.allow("198.51.100.7", T0 + 0.5)
    # A long silence refills the bucket to the burst, no further.
    assert [limiter.allow("198.51.100.7", T0 + 100) for _ in range(4)] == [True] * 3 + [False]


def test_each_source_has_its_own_bucket_and_an_ipv6_source_is_a_slash_64() -> None:
    limiter = AnswerLimiter(rate=1.0, burst=1)
    assert limiter.allow("198.51.100.7", T0)
    assert not limiter.allow("198.51.100.7", T0)
    assert limiter.allow("198.51.100.8", T0)
    assert limiter.allow("2001:db8:1:2::1", T0)
    assert not limiter.allow("2001:db8:1:2:ffff::9", T0)  # the same /64
    assert limiter.allow("2001:db8:1:3::1", T0)


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
        ("fe80::1%eth0", "fe80::"),
        ("::ffff:198.51.100.7", "198.51.100.7"),  # a dual-stack listener's IPv4 peer
        ("not-an-ip:", "not-an-ip:"),
    ],
)
def test_source_key(ip: str, key: str) -> None:
    assert source_key(ip) == key


def test_a_rate_of_zero_never_limits_and_tracks_nothing() -> None:
    limiter = AnswerLimiter(rate=0, burst=0)
    assert all(limiter.allow("198.51.100.7", T0) for _ in range(1000))
    assert len(limiter) == 0


def test_full_buckets_are_forgotten_and_memory_is_bounded() -> None:
    limiter = AnswerLimiter(rate=1.0, burst=2, max_tracked=100)
    for n in range(1000):
        limiter.allow(str(ipaddress.IPv4Address(0x0A000000 + n)), T0)
    assert len(limiter) == 100  # the oldest evicted
    limiter.forget_full(T0 + 0.5)
    assert len(limiter) == 100  # one token spent, half refilled: still tracked
    limiter.forget_full(T0 + 1.0)
    assert len(limiter) == 0


def test_an_evicted_source_starts_over_with_a_full_bucket() -> None:
    """The price of the bound, documented: eviction forgets a spent bucket."""
    limiter = AnswerLimiter(rate=1.0, burst=1, max_tracked=1)
    assert limiter.allow("198.51.100.7", T0)
    assert not limiter.allow("198.51.100.7", T0)
    assert limiter.allow("198.51.100.8", T0)  # evicts .7
    assert limiter.allow("198.51.100.7", T0)


@pytest.mark.parametrize(
    ("rate", "burst", "max_tracked"), [(-1.0, 1, 10), (1.0, 0, 10), (1.0, -1, 10), (1.0, 1, 0)]
)
def test_bad_answer_limiter_parameters_are_refused(
    rate: float, burst: int, max_tracked: int
) -> None:
    with pytest.raises(ValueError):
        AnswerLimiter(rate, burst, max_tracked)

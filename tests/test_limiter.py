"""passage.limiter: failures per source IP in a fixed window, driven by an injected clock."""

from __future__ import annotations

import ipaddress

import pytest

from passage.limiter import FailureLimiter

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

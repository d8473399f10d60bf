"""passage.log_limit: lines a client can cause, bounded, with time passed in."""

from __future__ import annotations

import logging

import pytest

from passage.log_limit import RateLimitedLog


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> RateLimitedLog:
    caplog.set_level(logging.DEBUG, logger="test.limited")
    return RateLimitedLog(logging.getLogger("test.limited"), rate=2.0, burst=3)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_burst_then_the_rate_then_a_count_of_what_was_left_out(
    log: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    written = [log.warning(0.0, "bad request from %s", f"10.0.0.{n}") for n in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert log.suppressed == 7
    assert log.warning(0.5, "bad request from %s", "10.0.0.99")  # one token after 0.5 s at 2/s
    assert lines(caplog)[3:] == [
        "7 similar lines left out (at most 3 at once, then 2 a second)",
        "bad request from 10.0.0.99",
    ]
    assert log.suppressed == 0
    assert not log.warning(0.5, "again")


def test_the_bucket_refills_to_the_burst_and_no_more(log: RateLimitedLog) -> None:
    for _ in range(3):
        log.info(0.0, "x")
    assert [log.info(100.0, "y") for _ in range(4)] == [True, True, True, False]


def test_lines_below_the_loggers_level_cost_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="test.quiet")
    log = RateLimitedLog(logging.getLogger("test.quiet"), rate=1.0, burst=1)
    assert not log.info(0.0, "hidden")
    assert log.warning(0.0, "shown")  # the info line took no token
    assert log.suppressed == 0


def test_lines_never_carry_a_traceback(
    log: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        log.warning(0.0, "client sent junk")
    assert caplog.records[0].exc_info is None


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_budget_that_writes_nothing_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        RateLimitedLog(logging.getLogger("x"), rate=rate, burst=burst)

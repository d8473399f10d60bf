"""passage.http_timers: one HTTP connection's deadlines, driven with a virtual clock."""

from __future__ import annotations

import pytest

from passage.http_limits import HttpLimits
from passage.http_timers import ConnectionClock, Expiry, Phase

LIMITS = HttpLimits(
    request_head_timeout=10.0,
    idle_timeout=60.0,
    body_timeout=10.0,
    body_min_rate=100,  # 1,000 bytes per 10 s window
    write_timeout=30.0,
)


def clock(now: float = 0.0) -> ConnectionClock:
    return ConnectionClock(LIMITS, now)


def test_a_new_connection_that_says_nothing_is_closed_without_an_answer() -> None:
    c = clock(100.0)
    assert c.deadline() == 110.0
    assert c.expired(109.9) is None
    assert c.expired(110.0) is Expiry.SILENT
    assert not Expiry.SILENT.answer_408


def test_a_head_trickled_a_byte_at_a_time_gets_408_at_its_deadline() -> None:
    c = clock()
    for second in range(10):
        c.received(1, float(second))
        assert c.expired(float(second)) is None
    assert c.deadline() == 10.0  # the head's first byte set it; bytes do not move it
    assert c.expired(10.0) is Expiry.REQUEST_HEAD
    assert Expiry.REQUEST_HEAD.answer_408


def test_idle_after_a_response_then_a_new_head_gets_the_head_timeout() -> None:
    c = clock()
    c.received(100, 1.0)
    c.request_started(1.0, body_complete=True)
    assert (c.phase, c.deadline()) == (Phase.HANDLER, None)  # the handler answers; no timer
    c.response_finished(5.0)
    assert (c.phase, c.deadline()) == (Phase.IDLE, 65.0)
    assert c.expired(64.0) is None
    c.received(3, 64.0)  # the next request begins
    assert (c.phase, c.deadline()) == (Phase.HEAD, 74.0)
    assert c.expired(74.0) is Expiry.REQUEST_HEAD


def test_an_idle_connection_is_closed_silently() -> None:
    c = clock()
    c.request_started(1.0, body_complete=True)
    c.response_finished(2.0)
    assert c.expired(62.0) is Expiry.IDLE
    assert not Expiry.IDLE.answer_408


def test_a_body_at_a_fair_pace_runs_window_after_window() -> None:
    c = clock()
    c.request_started(0.0, body_complete=False)
    assert c.deadline() == 10.0
    for second in range(1, 35):
        c.received(150, float(second))  # 150 B/s against a minimum of 100
        assert c.expired(float(second)) is None, second
    c.body_complete()
    assert c.deadline() is None


def test_a_body_trickled_one_byte_every_ten_seconds_is_cut() -> None:
    c = clock()
    c.request_started(0.0, body_complete=False)
    c.received(1, 5.0)
    assert c.expired(10.0) is Expiry.BODY_TOO_SLOW


def test_a_burst_then_a_trickle_is_cut_in_the_first_window_that_falls_short() -> None:
    c = clock()
    c.request_started(0.0, body_complete=False)
    c.received(5000, 1.0)
    assert c.expired(10.0) is None  # the first window brought 5,000 bytes
    assert c.deadline() == 20.0
    c.received(999, 15.0)
    assert c.expired(20.0) is Expiry.BODY_TOO_SLOW


def test_time_the_server_holds_off_the_body_is_not_counted() -> None:
    """Back-pressure: the handler does not read, the server pauses reading; the client
    cannot send and is not to blame."""
    c = clock()
    c.request_started(0.0, body_complete=False)
    c.received(400, 2.0)
    c.reading_paused(True, 4.0)
    assert c.deadline() is None
    assert c.expired(500.0) is None
    c.reading_paused(False, 500.0)
    assert c.deadline() == 506.0  # 4 s of the window spent, 6 s left
    c.received(600, 505.0)
    assert c.expired(506.0) is None  # 1,000 bytes in 10 s of waiting


def test_a_request_started_while_reading_is_paused_waits_for_the_resume() -> None:
    c = clock()
    c.reading_paused(True, 1.0)
    c.request_started(1.0, body_complete=False)
    assert c.deadline() is None
    c.reading_paused(False, 3.0)
    assert c.deadline() == 13.0


def test_a_stalled_response_is_cut_after_the_write_timeout() -> None:
    c = clock()
    c.request_started(0.0, body_complete=True)
    c.writing_paused(True, 1.0)
    assert c.deadline() == 31.0
    c.writing_paused(False, 20.0)
    assert c.deadline() is None
    c.writing_paused(True, 21.0)
    assert c.expired(51.0) is Expiry.RESPONSE_STALLED


@pytest.mark.parametrize(("rate", "window", "minimum"), [(0, 10.0, 1), (1, 0.3, 1), (100, 0.3, 30)])
def test_each_window_must_bring_at_least_one_byte(rate: int, window: float, minimum: int) -> None:
    limits = HttpLimits(body_min_rate=rate, body_timeout=window)
    assert ConnectionClock(limits, 0.0).min_window_bytes == minimum


def test_expiries_name_their_reason() -> None:
    assert [e.reason for e in Expiry] == [
        "request_head_timeout", "idle_timeout", "no_request", "request_body_too_slow",
        "response_stalled",
    ]  # fmt: skip

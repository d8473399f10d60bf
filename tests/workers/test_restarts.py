"""When the parent starts a dead worker again (``passage.workers.restarts``)."""

from __future__ import annotations

from passage.workers.restarts import FIRST_DELAY, MAX_DELAY, STEADY, RestartPolicy


def test_a_worker_that_ran_a_while_is_restarted_at_once() -> None:
    policy = RestartPolicy()
    assert policy.died(started_at=100.0, now=100.0 + STEADY) == 0.0


def test_a_worker_that_keeps_dying_young_waits_longer_each_time_up_to_the_cap() -> None:
    policy = RestartPolicy()
    delays = [policy.died(started_at=0.0, now=1.0) for _ in range(12)]
    assert delays[:3] == [FIRST_DELAY, FIRST_DELAY * 2, FIRST_DELAY * 4]
    assert delays[-1] == MAX_DELAY
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:], strict=False))


def test_a_steady_run_resets_the_delay() -> None:
    policy = RestartPolicy()
    policy.died(started_at=0.0, now=1.0)
    policy.died(started_at=2.0, now=3.0)
    assert policy.died(started_at=10.0, now=10.0 + STEADY + 1) == 0.0
    assert policy.died(started_at=30.0, now=31.0) == FIRST_DELAY

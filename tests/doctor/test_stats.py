"""Round trip, jitter (RFC 3550 §6.4.1) and loss of a probe stream, on a virtual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from passage.doctor.stats import LoopMeter

SESSION = b"session!"
START = 1000.0


def run(
    meter: LoopMeter, transit: Callable[[int], float | None], *, late: float = 0.0
) -> list[float]:
    """Drive ``meter`` to the end: each probe ``n`` comes back ``transit(n)`` seconds after it
    left (None: lost). Returns the times the meter was woken at."""
    meter.start(START)
    arrivals: list[tuple[float, bytes]] = []
    woken = []
    while (timer := meter.get_timer()) is not None:
        due = sorted(a for a in arrivals if a[0] <= timer)
        for when, probe in due:
            meter.received(probe, when)
            arrivals.remove((when, probe))
        if meter.done:
            break
        woken.append(timer)
        for probe in meter.handle_timer(timer + late):
            back = transit(int.from_bytes(probe[8:12], "big"))
            if back is not None:
                arrivals.append((timer + late + back, meter.payload(probe)))
    return woken


def test_a_clean_stream_sends_on_schedule_and_ends_when_all_is_back() -> None:
    meter = LoopMeter(SESSION, duration=1.0, interval=0.02)
    woken = run(meter, lambda n: 0.010)
    assert meter.count == 50
    assert woken == [pytest.approx(START + n * 0.02) for n in range(50)]
    stats = meter.stats()
    assert (stats.sent, stats.received, stats.lost, stats.loss) == (50, 50, 0, 0.0)
    assert stats.rtt_min == stats.rtt_max == pytest.approx(0.010)
    assert stats.jitter == pytest.approx(0.0)
    assert meter.done and meter.get_timer() is None


def test_loss_is_what_never_came_back_within_the_linger() -> None:
    meter = LoopMeter(SESSION, duration=0.2, interval=0.02)
    woken = run(meter, lambda n: None if n % 5 == 0 else 0.1)
    stats = meter.stats()
    assert (stats.sent, stats.received, stats.lost) == (10, 8, 2)
    assert stats.loss == pytest.approx(0.2)
    # The last probe left at +0.18 s; the linger is 4 × the slowest round trip (0.1 s).
    assert woken[-1] == pytest.approx(START + 0.18 + 0.4)


def test_the_linger_is_at_least_a_quarter_second_and_at_most_two() -> None:
    quick = LoopMeter(SESSION, duration=0.02, interval=0.02)
    assert run(quick, lambda n: None)[-1] == pytest.approx(START + 0.25)
    # A 0.6 s round trip seen while the stream still runs: 4 × 0.6 s, cut to 2 s.
    slow = LoopMeter(SESSION, duration=1.0, interval=0.02)
    assert run(slow, lambda n: 0.6 if n == 0 else None)[-1] == pytest.approx(START + 0.98 + 2.0)
    # Back after the stream ended: too late, lost, and the linger did not wait for it.
    late = LoopMeter(SESSION, duration=0.02, interval=0.02)
    assert run(late, lambda n: 1.0)[-1] == pytest.approx(START + 0.25)
    assert late.stats().lost == 1


def test_interarrival_jitter_follows_rfc3550() -> None:
    """Transit 10, 20, 10 ms: J = 10/16 ms, then J += (10 − J)/16 (RFC 3550 §6.4.1)."""
    meter = LoopMeter(SESSION, duration=0.06, interval=0.02)
    run(meter, lambda n: (0.010, 0.020, 0.010)[n])
    first = 0.010 / 16
    assert meter.stats().jitter == pytest.approx(first + (0.010 - first) / 16)


def test_percentiles_are_nearest_rank() -> None:
    meter = LoopMeter(SESSION, duration=0.4, interval=0.02)
    run(meter, lambda n: (n + 1) / 1000)  # 1 ms to 20 ms
    stats = meter.stats()
    assert stats.rtt_median == pytest.approx(0.0105)
    assert stats.rtt_mean == pytest.approx(0.0105)
    assert stats.rtt_p95 == pytest.approx(0.019)
    assert (stats.rtt_min, stats.rtt_max) == (pytest.approx(0.001), pytest.approx(0.020))


def test_duplicates_reordering_and_strangers_are_told_apart() -> None:
    meter = LoopMeter(SESSION, duration=0.06, interval=0.02)
    meter.start(START)
    probes = [p for t in (START, START + 0.02, START + 0.04) for p in meter.handle_timer(t)]
    assert len(probes) == 3 and meter.get_timer() is not None
    assert meter.received(meter.payload(probes[1]), START + 0.05)
    assert meter.received(meter.payload(probes[0]), START + 0.06)  # older than the last: reordered
    assert meter.received(meter.payload(probes[0]), START + 0.07)  # again: a duplicate
    assert not meter.received(b"other!!!" + probes[2][8:], START + 0.07)  # another session
    assert not meter.received(SESSION + (99).to_bytes(4, "big"), START + 0.07)  # never sent
    assert not meter.received(SESSION, START + 0.07)  # too short
    stats = meter.stats()
    assert (stats.received, stats.duplicates, stats.reordered) == (2, 1, 1)
    assert not meter.done


def test_a_probe_back_after_the_end_is_lost() -> None:
    meter = LoopMeter(SESSION, duration=0.02, interval=0.02)
    meter.start(START)
    (probe,) = meter.handle_timer(START)
    meter.handle_timer(START + 0.25)
    assert meter.done
    assert not meter.received(meter.payload(probe), START + 0.3)
    assert meter.stats().lost == 1


def test_a_late_wake_sends_every_probe_due() -> None:
    meter = LoopMeter(SESSION, duration=0.1, interval=0.02)
    meter.start(START)
    assert len(meter.handle_timer(START + 0.05)) == 3  # due at 0, 0.02, 0.04
    assert meter.get_timer() == pytest.approx(START + 0.06)


def test_probes_are_their_id_padded_to_size() -> None:
    meter = LoopMeter(SESSION, duration=0.02, size=172)
    meter.start(START)
    (probe,) = meter.handle_timer(START)
    assert probe == SESSION + bytes(4)
    assert meter.payload(probe) == probe + bytes(160)


@pytest.mark.parametrize(
    "kwargs",
    [{"duration": 0.0}, {"duration": 1.0, "interval": 0.0}, {"duration": 1.0, "size": 11}],
)
def test_nonsense_plans_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoopMeter(SESSION, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LoopMeter(b"short", duration=1.0)

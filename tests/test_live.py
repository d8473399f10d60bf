"""The live-state leaf: the last hour's throughput in steps, bounded."""

from __future__ import annotations

from passage.live import ThroughputSeries


def test_the_throughput_series_keeps_one_hour_in_steps() -> None:
    series = ThroughputSeries(step=10, span=60)
    series.add(100, 1, now=1000.0)
    series.add(50, 2, now=1005.0)
    series.add(7, 0, now=1012.0)
    series.add(9, 9, now=995.0)  # older than the last step: a clock stepped back
    points = series.points(now=1015.0)
    assert [(p.start, p.bytes_to_peer, p.bytes_from_peer) for p in points][-2:] == [
        (1000.0, 150, 3),
        (1010.0, 7, 0),
    ]
    assert len(points) == 6
    later = series.points(now=1100.0)
    assert sum(p.bytes_to_peer for p in later) == 0  # an hour's worth of steps, no more
    for many in range(1000):
        series.add(1, 1, now=2000.0 + 10 * many)
    assert len(series._steps) == 6

"""How flushed deltas split across hours, without a database."""

from __future__ import annotations

import dataclasses

import pytest

from passage.store.rollup import (
    apportion,
    hourly_deltas,
    merge_allocations,
    split_by_hour,
    validate,
)
from passage.usage import UsageRecord

H = 1_700_002_800  # a whole hour (2023-11-14T23:00:00Z)
assert H % 3600 == 0


def make_record(**changes: object) -> UsageRecord:
    base = UsageRecord(
        allocation_id="a1",
        username="1700000000:alice",
        subject="alice",
        transport="udp",
        client_address="192.0.2.1:5000",
        relayed_address="198.51.100.1:50000",
        started_at=H + 10.0,
        period_start=H + 10.0,
        period_end=H + 11.0,
        bytes_to_peer=100,
        packets_to_peer=2,
        bytes_from_peer=50,
        packets_from_peer=1,
        ended=False,
        end_reason=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_span_inside_one_hour_is_one_part() -> None:
    assert split_by_hour(H + 10.0, H + 11.5) == [(H, 1.5)]


def test_span_straddling_a_boundary_splits_by_seconds() -> None:
    assert split_by_hour(H + 3599.25, H + 3600.75) == [(H, 0.75), (H + 3600, 0.75)]


def test_span_ending_on_a_boundary_stays_in_its_hour() -> None:
    assert split_by_hour(H, H + 3600.0) == [(H, 3600.0)]


def test_span_over_several_hours_covers_each() -> None:
    parts = split_by_hour(H + 1800.0, H + 3 * 3600 + 900.0)
    assert parts == [(H, 1800.0), (H + 3600, 3600.0), (H + 7200, 3600.0), (H + 10800, 900.0)]


def test_zero_length_span_is_one_empty_part() -> None:
    assert split_by_hour(H + 3600.0, H + 3600.0) == [(H + 3600, 0.0)]


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, [1.0, 3.0], [25, 75]),
        (1, [0.5, 0.5], [0, 1]),
        (7, [1.0, 1.0, 1.0], [2, 3, 2]),
        (10, [0.0, 0.0], [0, 10]),
        (0, [2.0, 1.0], [0, 0]),
        (5, [4.0], [5]),
    ],
)
def test_apportion_is_proportional_and_exact(
    total: int, weights: list[float], expected: list[int]
) -> None:
    parts = apportion(total, weights)
    assert parts == expected
    assert sum(parts) == total


def test_apportion_never_loses_a_byte_on_awkward_weights() -> None:
    weights = [0.1] * 7 + [1e-9, 3599.3]
    for total in (1, 17, 999_983, 2**40 + 1):
        parts = apportion(total, weights)
        assert sum(parts) == total
        assert min(parts) >= 0


def test_hourly_deltas_split_counters_in_proportion_to_overlap() -> None:
    record = make_record(
        period_start=H + 3599.0, period_end=H + 3603.0, bytes_to_peer=1000, packets_to_peer=4
    )
    buckets = hourly_deltas([record])
    first, second = buckets[("alice", H)], buckets[("alice", H + 3600)]
    assert (first.allocation_seconds, second.allocation_seconds) == (1.0, 3.0)
    assert first.counters == [250, 1, 12, 0]
    assert second.counters == [750, 3, 38, 1]
    assert first.allocations_started == second.allocations_started == 0


def test_started_allocations_count_in_the_hour_they_started() -> None:
    record = make_record(started_at=H - 5.0, period_start=H + 7200.0, period_end=H + 7201.0)
    buckets = hourly_deltas([record], started=[record])
    assert buckets[("alice", H - 3600)].allocations_started == 1
    assert buckets[("alice", H - 3600)].counters == [0, 0, 0, 0]
    assert buckets[("alice", H + 7200)].allocations_started == 0


def test_merge_sums_one_allocations_flushes_and_keeps_its_end() -> None:
    flushes = [
        make_record(period_start=H + 10.0, period_end=H + 11.0),
        make_record(period_start=H + 11.0, period_end=H + 12.0, ended=True, end_reason="expired"),
        make_record(allocation_id="a2", subject="bob"),
    ]
    merged = merge_allocations(flushes)
    assert list(merged) == ["a1", "a2"]
    assert merged["a1"].counters == [200, 4, 100, 2]
    assert (merged["a1"].period_end, merged["a1"].ended_at) == (H + 12.0, H + 12.0)
    assert merged["a1"].end_reason == "expired"
    assert merged["a2"].ended_at is None


@pytest.mark.parametrize(
    "changes",
    [
        {"period_end": H + 9.0},
        {"bytes_from_peer": -1},
        {"period_end": float("inf")},
    ],
)
def test_unaccountable_records_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        validate(make_record(**changes))

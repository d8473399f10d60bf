"""Turn flushed counter deltas into allocation totals and hourly buckets; no I/O.

The relay flushes each allocation's counters about once a second as a
`passage.usage.UsageRecord`: the deltas since the previous flush and the span
``[period_start, period_end]`` they cover. A span that straddles an hour boundary
is split at the boundary:

- ``allocation_seconds`` gets the exact overlap of the span with each hour;
- byte and packet counts are apportioned in proportion to that overlap, rounded so the
  parts are whole and add up to the delta exactly (nothing is lost or invented);
- a zero-length span puts everything in the hour that contains it.

An allocation counts once in ``allocations_started``, in the hour of its ``started_at``;
the ledger decides which allocations are new, since that needs the database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from passage.usage import UsageRecord

HOUR = 3600
"""Seconds in a rollup bucket."""

DAY = 86_400
"""Seconds in a UTC day."""


def record_deltas(record: UsageRecord) -> tuple[int, int, int, int]:
    """The record's four deltas, in column order."""
    return (
        record.bytes_to_peer,
        record.packets_to_peer,
        record.bytes_from_peer,
        record.packets_from_peer,
    )


@dataclass(slots=True)
class AllocationDelta:
    """Everything one batch says about one allocation, merged."""

    first: UsageRecord
    """The batch's first record of it: identity fields and ``started_at`` come from here."""
    period_end: float
    """The latest ``period_end`` seen."""
    counters: list[int]
    """Summed deltas, in `record_deltas` order."""
    end_reason: str | None
    """Set when a record of the batch was its final one."""
    ended_at: float | None
    """``period_end`` of the final record, if the batch holds it."""


@dataclass(slots=True)
class HourlyDelta:
    """What a batch adds to one (subject, hour) bucket."""

    counters: list[int]
    """Summed deltas, in `record_deltas` order."""
    allocation_seconds: float = 0.0
    """Seconds of allocation lifetime that fell in the hour."""
    allocations_started: int = 0
    """Allocations whose ``started_at`` fell in the hour."""


def floor_to(instant: float, width: int) -> int:
    """The start of the `width`-second bucket (aligned to the unix epoch) holding `instant`."""
    return math.floor(instant / width) * width


def ceil_to(instant: float, width: int) -> int:
    """The smallest multiple of `width` at or after `instant`."""
    return math.ceil(instant / width) * width


def validate(record: UsageRecord) -> None:
    """Raise `ValueError` if `record` cannot be accounted (negative delta, reversed span)."""
    if record.period_end < record.period_start:
        raise ValueError(f"allocation {record.allocation_id}: period ends before it starts")
    if any(value < 0 for value in record_deltas(record)):
        raise ValueError(f"allocation {record.allocation_id}: negative counter delta")
    if not all(map(math.isfinite, (record.started_at, record.period_start, record.period_end))):
        raise ValueError(f"allocation {record.allocation_id}: non-finite timestamp")


def split_by_hour(period_start: float, period_end: float) -> list[tuple[int, float]]:
    """``(hour_start, seconds)`` for every hour the span overlaps, oldest first.

    A zero-length span gives one entry with 0 seconds, for the hour containing it.
    """
    hour = floor_to(period_start, HOUR)
    if period_end <= period_start:
        return [(hour, 0.0)]
    parts: list[tuple[int, float]] = []
    cursor = period_start
    while cursor < period_end:
        boundary = hour + HOUR
        part_end = min(boundary, period_end)
        parts.append((hour, part_end - cursor))
        cursor, hour = part_end, boundary
    return parts


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into whole parts proportional to `weights` that sum to `total`.

    Each part is the difference of rounded cumulative shares, so the rounding error never
    accumulates; with all weights zero the last part takes everything.
    """
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return [0] * (len(weights) - 1) + [total]
    parts: list[int] = []
    given = 0
    cumulative = 0.0
    for weight in weights[:-1]:
        cumulative += weight
        upto = min(total, round(total * cumulative / weight_sum))
        parts.append(upto - given)
        given = upto
    parts.append(total - given)
    return parts


def merge_allocations(records: Iterable[UsageRecord]) -> dict[str, AllocationDelta]:
    """Merge a batch's records per allocation id, preserving first-seen order."""
    merged: dict[str, AllocationDelta] = {}
    for record in records:
        delta = merged.get(record.allocation_id)
        if delta is None:
            delta = merged[record.allocation_id] = AllocationDelta(
                first=record,
                period_end=record.period_end,
                counters=[0, 0, 0, 0],
                end_reason=None,
                ended_at=None,
            )
        delta.period_end = max(delta.period_end, record.period_end)
        delta.counters = [a + b for a, b in zip(delta.counters, record_deltas(record), strict=True)]
        if record.ended and delta.ended_at is None:
            delta.ended_at = record.period_end
            delta.end_reason = record.end_reason
    return merged


def hourly_deltas(
    records: Iterable[UsageRecord], started: Iterable[UsageRecord] = ()
) -> dict[tuple[str, int], HourlyDelta]:
    """Sum `records` into ``(subject, hour_start)`` buckets.

    `started` lists one record per allocation first seen by the ledger in this batch;
    each adds 1 to ``allocations_started`` in the hour of its ``started_at``.
    """
    buckets: dict[tuple[str, int], HourlyDelta] = {}

    def bucket(subject: str, hour: int) -> HourlyDelta:
        key = (subject, hour)
        found = buckets.get(key)
        if found is None:
            found = buckets[key] = HourlyDelta(counters=[0, 0, 0, 0])
        return found

    for record in records:
        parts = split_by_hour(record.period_start, record.period_end)
        seconds = [part_seconds for _, part_seconds in parts]
        shares = [apportion(total, seconds) for total in record_deltas(record)]
        for index, (hour, part_seconds) in enumerate(parts):
            target = bucket(record.subject, hour)
            target.allocation_seconds += part_seconds
            for column, share in enumerate(shares):
                target.counters[column] += share[index]
    for record in started:
        bucket(record.subject, floor_to(record.started_at, HOUR)).allocations_started += 1
    return buckets

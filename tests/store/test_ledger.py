"""The usage ledger against a real database: totals, hourly rollup, durability."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest
from sqlalchemy import func, select
from store_targets import StoreTarget

from passage.store.database import Database
from passage.store.ledger import LedgerNode, UsageLedger
from passage.store.schema import allocations, usage_hourly
from usage_records import flush

H = 1_700_002_800  # a whole hour (2023-11-14T23:00:00Z)
DAY = 1_699_920_000  # the UTC midnight before it (2023-11-14T00:00:00Z)
assert H % 3600 == 0 and DAY % 86_400 == 0 and DAY < H < DAY + 86_400


def counters(item: object) -> tuple[int, int, int, int]:
    return (
        item.bytes_to_peer,  # type: ignore[attr-defined]
        item.packets_to_peer,  # type: ignore[attr-defined]
        item.bytes_from_peer,  # type: ignore[attr-defined]
        item.packets_from_peer,  # type: ignore[attr-defined]
    )


async def test_flushes_add_up_to_allocation_totals(database: Database) -> None:
    ledger = UsageLedger(database)
    t0 = H + 100.0
    await ledger.record([flush(start=t0, end=t0 + 1, sent=1000, received=200)])
    await ledger.record([flush(start=t0 + 1, end=t0 + 2, sent=500, started_at=t0)])
    await ledger.record([flush(start=t0 + 2, end=t0 + 3.5, received=300, started_at=t0)])
    [allocation] = await ledger.allocations()
    assert counters(allocation) == (1500, 15, 500, 5)
    assert (allocation.started_at, allocation.last_seen_at) == (t0, t0 + 3.5)
    assert allocation.duration_seconds == 3.5
    assert (allocation.ended_at, allocation.end_reason) == (None, None)
    assert (allocation.username, allocation.subject) == ("1700000000:alice", "alice")
    assert (allocation.transport, allocation.client_address, allocation.relayed_address) == (
        "udp",
        "192.0.2.1:5000",
        "198.51.100.1:50000",
    )


async def test_final_record_sets_end_time_and_reason(database: Database) -> None:
    ledger = UsageLedger(database)
    t0 = H + 100.0
    await ledger.record([flush(start=t0, end=t0 + 1, sent=100)])
    await ledger.record(
        [flush(start=t0 + 1, end=t0 + 600, started_at=t0, end_reason="refresh_zero")]
    )
    [allocation] = await ledger.allocations()
    assert (allocation.ended_at, allocation.end_reason) == (t0 + 600, "refresh_zero")
    assert allocation.duration_seconds == 600
    assert counters(allocation) == (100, 1, 0, 0)


async def test_several_flushes_of_one_allocation_in_one_batch(database: Database) -> None:
    ledger = UsageLedger(database)
    t0 = H + 100.0
    await ledger.record(
        [
            flush(start=t0, end=t0 + 1, sent=100),
            flush(start=t0 + 1, end=t0 + 2, sent=200, started_at=t0),
            flush(start=t0 + 2, end=t0 + 3, sent=300, started_at=t0, end_reason="expired"),
        ]
    )
    [allocation] = await ledger.allocations()
    assert counters(allocation) == (600, 6, 0, 0)
    assert (allocation.ended_at, allocation.end_reason) == (t0 + 3, "expired")
    [hour] = await ledger.usage(start=H, end=H + 3600)
    assert (hour.allocations_started, hour.allocation_seconds) == (1, 3.0)


async def test_a_flush_straddling_an_hour_is_split_by_seconds(database: Database) -> None:
    ledger = UsageLedger(database)
    t0 = H + 3598.0
    await ledger.record([flush(start=t0, end=t0 + 1, sent=400)])
    # 1 s before the boundary, 3 s after: a quarter of the deltas go to the first hour.
    await ledger.record([flush(start=t0 + 1, end=t0 + 5, sent=1000, received=4000, started_at=t0)])
    buckets = await ledger.usage(start=H, end=H + 7200)
    assert [(b.subject, b.bucket_start) for b in buckets] == [("alice", H), ("alice", H + 3600)]
    first, second = buckets
    assert counters(first) == (400 + 250, 4 + 2, 1000, 10)
    assert counters(second) == (750, 8, 3000, 30)
    assert (first.allocation_seconds, second.allocation_seconds) == (2.0, 3.0)
    assert (first.allocations_started, second.allocations_started) == (1, 0)


async def test_usage_returns_every_bucket_the_range_touches(database: Database) -> None:
    ledger = UsageLedger(database)
    await ledger.record([flush(start=H + 10, end=H + 11, sent=100)])
    await ledger.record([flush("a2", start=H + 3610, end=H + 3611, sent=200)])
    inside = await ledger.usage(start=H + 1800, end=H + 1801)
    assert [(b.bucket_start, b.bytes_to_peer) for b in inside] == [(H, 100)]
    assert await ledger.usage(start=H + 7200, end=H + 10_800) == []
    both = await ledger.usage(start=H + 1, end=H + 3601)
    assert [(b.bucket_start, b.bytes_to_peer) for b in both] == [(H, 100), (H + 3600, 200)]


async def test_day_granularity_sums_the_hours_of_each_utc_day(database: Database) -> None:
    ledger = UsageLedger(database)
    records = [
        flush("a1", start=DAY + 5, end=DAY + 65, sent=100),  # first hour of the day
        flush("a2", start=H + 10, end=H + 20, sent=200, received=300),  # last hour
        flush("a3", start=DAY + 86_400 + 7, end=DAY + 86_400 + 8, sent=400),  # next day
        flush("b1", subject="bob", start=H + 30, end=H + 31, sent=800),
    ]
    await ledger.record(records)
    days = await ledger.usage(start=DAY + 4000, end=DAY + 86_401, granularity="day")
    summary = [
        (d.subject, d.bucket_start, d.bytes_to_peer, d.bytes_from_peer, d.allocations_started)
        for d in days
    ]
    assert summary == [
        ("alice", DAY, 300, 300, 2),
        ("bob", DAY, 800, 0, 1),
        ("alice", DAY + 86_400, 400, 0, 1),
    ]
    assert days[0].allocation_seconds == 70.0
    hours = await ledger.usage(start=DAY, end=DAY + 86_400, subject="alice")
    assert [h.bucket_start for h in hours] == [DAY, H]
    assert sum(h.bytes_to_peer for h in hours) == days[0].bytes_to_peer


async def test_subject_filter_keeps_only_that_subject(database: Database) -> None:
    ledger = UsageLedger(database)
    await ledger.record(
        [
            flush("a1", start=H + 10, end=H + 11, sent=100),
            flush("b1", subject="bob", start=H + 10, end=H + 11, sent=200),
            flush("c1", subject="8:acs:res_0000-guid", start=H + 12, end=H + 13, sent=300),
        ]
    )
    bob = await ledger.usage(start=H, end=H + 3600, subject="bob")
    assert [(b.subject, b.bytes_to_peer) for b in bob] == [("bob", 200)]
    everyone = await ledger.usage(start=H, end=H + 3600)
    assert [b.subject for b in everyone] == ["8:acs:res_0000-guid", "alice", "bob"]
    assert [a.allocation_id for a in await ledger.allocations(subject="bob")] == ["b1"]


async def test_allocation_query_filters_by_time_and_limits(database: Database) -> None:
    ledger = UsageLedger(database)
    await ledger.record(
        [
            flush("early", start=H, end=H + 10, end_reason="client_closed"),
            flush("middle", start=H + 100, end=H + 200),
            flush("late", start=H + 1000, end=H + 1001),
        ]
    )

    async def ids(**query: float) -> list[str]:
        return [a.allocation_id for a in await ledger.allocations(**query)]  # type: ignore[arg-type]

    assert await ids() == ["early", "middle", "late"]
    assert await ids(since=H + 50) == ["middle", "late"]
    assert await ids(until=H + 1000) == ["early", "middle"]
    assert await ids(since=H + 150, until=H + 500) == ["middle"]
    assert [a.allocation_id for a in await ledger.allocations(limit=1)] == ["early"]


async def test_an_allocation_is_counted_as_started_once(database: Database) -> None:
    ledger = UsageLedger(database)
    t0 = H + 100.0
    for second in range(5):
        await ledger.record([flush(start=t0 + second, end=t0 + second + 1, started_at=t0)])
    [hour] = await ledger.usage(start=H, end=H + 3600)
    assert hour.allocations_started == 1
    assert hour.allocation_seconds == 5.0


async def test_a_bad_record_rejects_the_whole_batch(database: Database) -> None:
    ledger = UsageLedger(database)
    good = flush("a1", start=H + 10, end=H + 11, sent=100)
    bad = dataclasses.replace(good, allocation_id="a2", bytes_to_peer=-5)
    with pytest.raises(ValueError, match="negative"):
        await ledger.record([good, bad])
    assert await ledger.allocations() == []
    assert await ledger.usage(start=H, end=H + 3600) == []


async def test_an_unknown_granularity_is_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="granularity"):
        await UsageLedger(database).usage(start=H, end=H + 1, granularity="week")  # type: ignore[arg-type]


async def test_committed_records_survive_close_and_reopen(target: StoreTarget) -> None:
    database = await target.open()
    try:
        await UsageLedger(database).record([flush(start=H + 10, end=H + 11, sent=100)])
    finally:
        await database.close()
    database = await target.open()
    try:
        ledger = UsageLedger(database)
        await ledger.record([flush(start=H + 11, end=H + 12, sent=50, started_at=H + 10)])
        [allocation] = await ledger.allocations()
        [hour] = await ledger.usage(start=H, end=H + 3600)
    finally:
        await database.close()
    assert allocation.bytes_to_peer == hour.bytes_to_peer == 150
    assert hour.allocations_started == 1


async def test_a_few_thousand_records_per_second(database: Database) -> None:
    # 1000 live allocations flushed once a second, each flush one batch; the ledger must
    # keep up with room to spare (a generous bound: this is a smoke test, not a benchmark).
    ledger = UsageLedger(database)
    batches = [
        [
            flush(f"alloc{n}", subject=f"user{n % 50}", start=H + s, end=H + s + 1, sent=1200)
            for n in range(1000)
        ]
        for s in range(3)
    ]
    began = time.perf_counter()
    for batch in batches:
        await ledger.record(batch)
    elapsed = time.perf_counter() - began
    assert elapsed < 3.0, f"3000 records took {elapsed:.2f} s"
    async with database.read() as connection:
        total = await connection.scalar(select(func.sum(allocations.c.bytes_to_peer)))
        hours = await connection.scalar(select(func.count()).select_from(usage_hourly))
    assert int(total) == 3000 * 1200
    assert hours == 50


_RECORD_THEN_HANG = f"""
import asyncio, sys
from passage.store.database import open_database
from passage.store.ledger import UsageLedger, UsageRecord

async def main() -> None:
    url, schema = sys.argv[1], sys.argv[2] or None
    database = await open_database(url, schema=schema)
    ledger = UsageLedger(database)
    for second in range(3):
        await ledger.record([UsageRecord(
            "k1", "alice", "alice", "udp", "192.0.2.1:5000", "198.51.100.1:50000",
            {H}.0, {H}.0 + second, {H}.0 + second + 1, 100, 1, 10, 1, False, None,
        )])
    print("committed", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_committed_batches_survive_kill_9(target: StoreTarget) -> None:
    # The process dies without closing anything: every batch record() returned for
    # must be there (WAL with synchronous=NORMAL survives a process crash).
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RECORD_THEN_HANG,
        target.url,
        target.schema or "",
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
        assert line == b"committed\n"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    database = await target.open()
    try:
        [allocation] = await UsageLedger(database).allocations()
    finally:
        await database.close()
    assert counters(allocation) == (300, 3, 30, 3)
    assert allocation.last_seen_at == H + 3


class SilentDatabase:
    """A store gone silent: a write transaction is never answered."""

    dialect = "postgresql"

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        await asyncio.Event().wait()
        yield


async def test_a_numbered_batch_the_store_never_answers_fails_after_the_timeout() -> None:
    """The flush behind it fails, keeps the batch and writes it again under its number
    (counted once: tests/turn/aio/test_usage_retry.py), rather than waiting for TCP."""
    ledger = UsageLedger(cast(Database, SilentDatabase()), LedgerNode("node-1", "boot-1"))
    ledger.write_timeout = 0.05
    writing = asyncio.ensure_future(ledger.record([flush(start=1_700_000_000)], 1))
    await asyncio.wait({writing}, timeout=5.0)  # without the bound: still waiting
    writing.cancel()
    assert writing.done() and not writing.cancelled()
    assert isinstance(writing.exception(), TimeoutError)

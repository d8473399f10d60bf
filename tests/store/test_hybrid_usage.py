"""Hybrid Connections usage in the ledger, on SQLite and PostgreSQL: per hybrid connection,
authorization rule and hour, summed by day."""

from __future__ import annotations

import pytest

from passage.store.database import Database
from passage.store.ledger import UsageLedger
from passage.usage import HybridUsageRecord

H = 1_700_002_800  # a whole hour (2023-11-14T23:00:00Z)
DAY = 1_699_920_000  # the UTC midnight before it
assert H % 3600 == 0 and DAY % 86_400 == 0 and DAY < H < DAY + 86_400


def record(
    path: str = "echo", rule: str = "sender", *, at: float = H + 10, to_listener: int = 0,
    to_sender: int = 0, requests: int = 0,
) -> HybridUsageRecord:  # fmt: skip
    return HybridUsageRecord(path, rule, at, at + 1, to_listener, to_sender, requests)


async def test_batches_add_up_per_connection_rule_and_hour(database: Database) -> None:
    ledger = UsageLedger(database)
    await ledger.hybrid.record([record(to_listener=100, to_sender=10, requests=1)])
    await ledger.hybrid.record(
        [
            record(at=H + 20, to_listener=5, to_sender=7, requests=2),
            record(rule="", at=H + 30, to_listener=1),  # anonymous senders
            record("web/app", at=H + 3600 + 5, to_sender=40, requests=1),  # the next hour
        ]
    )
    hours = await ledger.hybrid.usage(start=H, end=H + 7200)
    assert [(b.hybrid_connection, b.rule, b.bucket_start) for b in hours] == [
        ("echo", "", H),
        ("echo", "sender", H),
        ("web/app", "sender", H + 3600),
    ]
    echo = hours[1]
    assert (echo.bytes_to_listener, echo.bytes_to_sender, echo.requests) == (105, 17, 3)
    days = await ledger.hybrid.usage(start=H, end=H + 7200, granularity="day")
    assert [(b.hybrid_connection, b.rule, b.bucket_start) for b in days] == [
        ("echo", "", DAY),
        ("echo", "sender", DAY),
        ("web/app", "sender", DAY + 86_400),  # H + 3600 is the next UTC day's first hour
    ]
    only = await ledger.hybrid.usage(start=H, end=H + 7200, hybrid_connection="echo", rule="sender")
    assert [(b.bytes_to_listener, b.requests) for b in only] == [(105, 3)]
    assert await ledger.hybrid.usage(start=H + 7200, end=H + 10_800) == []


async def test_a_bad_record_writes_nothing_of_its_batch(database: Database) -> None:
    ledger = UsageLedger(database)
    with pytest.raises(ValueError, match="negative"):
        await ledger.hybrid.record([record(to_listener=5), record(to_sender=-1)])
    with pytest.raises(ValueError, match="ends before"):
        await ledger.hybrid.record([HybridUsageRecord("echo", "r", H + 5, H + 4, 1, 0, 0)])
    assert await ledger.hybrid.usage(start=H, end=H + 3600) == []


async def test_granularity_is_checked(database: Database) -> None:
    with pytest.raises(ValueError, match="granularity"):
        await UsageLedger(database).hybrid.usage(start=H, end=H + 1, granularity="week")  # type: ignore[arg-type]

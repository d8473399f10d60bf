"""Idempotent usage batches: several nodes write one ledger, and a batch retried after a
commit whose answer was lost is counted once, by (node, boot, sequence)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from passage.store.database import Database
from passage.store.ledger import BATCHES_KEPT, LedgerNode, UsageLedger
from passage.store.schema import ledger_batches
from usage_records import flush

H = 1_700_002_800  # a whole hour


async def bytes_sent(ledger: UsageLedger) -> int:
    return sum(allocation.bytes_to_peer for allocation in await ledger.allocations())


async def test_a_batch_retried_under_its_sequence_is_counted_once(database: Database) -> None:
    ledger = UsageLedger(database, LedgerNode("node-a", "boot-1"))
    batch = [flush(start=H + 10, end=H + 11, sent=1000)]
    await ledger.record(batch, 1)
    await ledger.record(batch, 1)  # the answer to the first was lost: the edge retries
    assert await bytes_sent(ledger) == 1000
    [bucket] = await ledger.usage(start=H, end=H + 3600)
    assert bucket.bytes_to_peer == 1000
    await ledger.record([flush(start=H + 11, end=H + 12, sent=500, started_at=H + 10)], 2)
    assert await bytes_sent(ledger) == 1500


async def test_the_same_sequence_of_another_node_or_boot_is_another_batch(
    database: Database,
) -> None:
    a = UsageLedger(database, LedgerNode("node-a", "boot-1"))
    b = UsageLedger(database, LedgerNode("node-b", "boot-1"))
    a_again = UsageLedger(database, LedgerNode("node-a", "boot-2"))
    await a.record([flush("x", start=H + 10, sent=100)], 1)
    await b.record([flush("y", start=H + 10, sent=200)], 1)
    await a_again.record([flush("z", start=H + 10, sent=400)], 1)
    assert await bytes_sent(a) == 700


async def test_nodes_writing_the_same_subject_hours_at_once_never_double_count(
    database: Database,
) -> None:
    nodes = [UsageLedger(database, LedgerNode(f"node-{n}", "boot")) for n in range(3)]

    async def write(node: int) -> None:
        for sequence in range(1, 11):
            batch = [flush(f"{node}-{sequence}", start=H + sequence, sent=100)]
            await nodes[node].record(batch, sequence)
            await nodes[node].record(batch, sequence)  # every batch retried once

    await asyncio.gather(*(write(node) for node in range(3)))
    [bucket] = await nodes[0].usage(start=H, end=H + 3600)
    assert bucket.bytes_to_peer == 3 * 10 * 100


async def test_old_batch_numbers_are_pruned(database: Database) -> None:
    ledger = UsageLedger(database, LedgerNode("node-a", "boot-1"))
    for sequence in (1, 2, BATCHES_KEPT + 1, 2 * BATCHES_KEPT):
        await ledger.record([flush(start=H + 10, sent=1)], sequence)
    async with database.read() as connection:
        kept = await connection.scalar(select(func.count()).select_from(ledger_batches))
    assert kept == 2  # BATCHES_KEPT + 1 and 2 * BATCHES_KEPT

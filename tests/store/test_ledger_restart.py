"""A restarted node closes the allocations its killed run left open, and no other node's.

On SQLite and PostgreSQL alike (issue 10, cluster note): several nodes share a
PostgreSQL ledger, so a node closes only rows stamped with its own node id and
an earlier boot; rows from before node ids are closed when stale on
PostgreSQL, always on SQLite (one file, one node).
"""

from __future__ import annotations

import pytest
from test_ledger import H, flush

from passage.store.database import Database
from passage.store.ledger import LEGACY_STALE_AFTER, AllocationUsage, LedgerNode, UsageLedger

NOW = H + 7200.0
A1, A2 = LedgerNode("node-a", "boot-1"), LedgerNode("node-a", "boot-2")
B = LedgerNode("node-b", "boot-1")


async def rows(database: Database) -> dict[str, AllocationUsage]:
    return {row.allocation_id: row for row in await UsageLedger(database).allocations()}


async def test_a_restarted_node_closes_only_its_own_earlier_runs_allocations(
    database: Database,
) -> None:
    await UsageLedger(database, A1).record(
        [
            flush("a-live", start=H, end=H + 50, sent=500),
            flush("a-expired", start=H, end=H + 20, sent=100, end_reason="expired"),
        ]
    )
    await UsageLedger(database, B).record([flush("b-live", start=H, end=H + 60, sent=700)])
    usage_before = await UsageLedger(database).usage(start=H, end=NOW)
    restarted = UsageLedger(database, A2)
    assert await restarted.close_orphans(NOW) == 1
    found = await rows(database)
    assert found["a-live"].end_reason == "server_restart"
    assert found["a-live"].ended_at == found["a-live"].last_seen_at == H + 50
    assert (found["a-live"].bytes_to_peer, found["a-live"].duration_seconds) == (500, 50.0)
    assert (found["a-expired"].end_reason, found["a-expired"].ended_at) == ("expired", H + 20)
    assert found["b-live"].ended_at is None  # another node's, alive for all we know
    assert await UsageLedger(database).usage(start=H, end=NOW) == usage_before  # nothing billed
    # What this run starts is its own business, not an orphan.
    await restarted.record([flush("a-new", start=NOW, end=NOW + 1, sent=100)])
    assert await restarted.close_orphans(NOW + 2) == 0
    assert (await rows(database))["a-new"].ended_at is None


async def test_rows_from_before_node_ids(database: Database) -> None:
    legacy = UsageLedger(database)  # as written before schema v4: no node, no boot
    await legacy.record(
        [
            flush("old-stale", start=H, end=NOW - LEGACY_STALE_AFTER - 1),
            flush("old-fresh", start=H, end=NOW - 10),
        ]
    )
    closed = await UsageLedger(database, A1).close_orphans(NOW)
    found = await rows(database)
    assert found["old-stale"].end_reason == "server_restart"
    if database.dialect == "sqlite":  # one file, one node: every open row is an orphan
        assert closed == 2 and found["old-fresh"].end_reason == "server_restart"
    else:  # may be another node's live allocation, started before its upgrade
        assert closed == 1 and found["old-fresh"].ended_at is None


async def test_closing_orphans_needs_a_node(database: Database) -> None:
    with pytest.raises(ValueError):
        await UsageLedger(database).close_orphans(NOW)

"""Hybrid Connections usage while the store is down. Without a spill, what waits is
summed per hybrid connection, rule and hour (what the ledger keeps anyway), so it grows
by the hour, not by the flush. With one (``passage serve``), every failed batch goes to
the data directory's spill at once, and a stop before the store is back loses nothing:
the next start writes it, each batch once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import passage.store.database
from passage.hybrid.aio.meters import RelayMeters, UsageFlusher
from passage.store.database import open_database, sqlite_url
from passage.store.ledger import LedgerNode, UsageLedger
from passage.store.spill import UsageSpill
from passage.usage import HybridUsageRecord

H = 1_700_002_800  # a whole hour


class Store:
    """The ledger's part a flusher sees: takes a batch, or fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.written: list[HybridUsageRecord] = []

    async def record(self, batch: list[HybridUsageRecord], sequence: int) -> None:
        if self.down:
            raise ConnectionError("the store is unreachable")
        self.written += batch


async def test_usage_kept_while_the_store_is_down_is_one_record_per_pair_and_hour() -> None:
    now = float(H)
    meters = RelayMeters()
    store = Store()
    flusher = UsageFlusher(meters, store.record, clock=lambda: now)
    for second in range(7200):  # two hours of one flush a second
        now = H + second + 1.0
        meters.traffic_of("hc", "send").to_listener += 10
        meters.traffic_of("hc", "").to_sender += 1
        await flusher.flush()
        assert flusher.held <= 2 + 4  # the failed batch, then 2 pairs × 2 hours
    store.down = False
    await flusher.flush()
    assert not flusher.unsaved
    by_pair_hour: dict[tuple[str, int], int] = {}
    for record in store.written:
        key = (record.rule, int(record.period_start) // 3600 * 3600)
        by_pair_hour[key] = by_pair_hour.get(key, 0) + record.bytes_to_listener
    assert by_pair_hour[("send", H)] == 10 * 3600
    assert by_pair_hour[("send", H + 3600)] == 10 * 3600
    assert sum(r.bytes_to_sender for r in store.written) == 7200


async def test_with_a_spill_a_stop_while_the_store_is_locked_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passage.store.database, "SQLITE_BUSY_TIMEOUT_MS", 50)  # fail fast
    now = float(H)
    meters = RelayMeters()
    database = await open_database(sqlite_url(tmp_path))
    try:
        ledger = UsageLedger(database, LedgerNode("node-a", "boot-1"))
        spill = UsageSpill(tmp_path, ledger, "boot-1")
        flusher = UsageFlusher(meters, ledger.hybrid.record, clock=lambda: now, overflow=spill)
        meters.traffic_of("hc", "send").to_listener += 100
        now += 1
        await flusher.flush()  # written
        holder = sqlite3.connect(tmp_path / "passage.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds SQLite's lock
        try:
            for _ in range(3):
                meters.traffic_of("hc", "send").to_listener += 10
                now += 1
                await flusher.flush()
                assert flusher.held == 0  # on disk, not in memory
            meters.traffic_of("hc", "send").to_listener += 1
            now += 1
            await flusher.close()  # the server stops before the store is back
            assert flusher.held == 0 and spill.records == 4
        finally:
            holder.rollback()
            holder.close()
        spill.close()
        restarted = UsageLedger(database, LedgerNode("node-a", "boot-2"))
        assert await UsageSpill(tmp_path, restarted, "boot-2").replay() == 4
        [bucket] = await restarted.hybrid.usage(start=H, end=H + 3600)
        assert bucket.bytes_to_listener == 100 + 3 * 10 + 1
    finally:
        await database.close()

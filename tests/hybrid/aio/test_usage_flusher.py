"""Hybrid Connections usage while the store is down: what waits is summed per hybrid
connection, rule and hour (what the ledger keeps anyway), so it grows by the hour, not
by the flush, and the ledger gets every byte once the store is back."""

from __future__ import annotations

from passage.hybrid.aio.meters import RelayMeters, UsageFlusher
from passage.usage import HybridUsageRecord

H = 1_700_002_800  # a whole hour


class Store:
    """The ledger's part a flusher sees: takes a batch, or fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.written: list[HybridUsageRecord] = []

    async def record(self, batch: list[HybridUsageRecord]) -> None:
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
        assert len(flusher.unsaved) <= 4  # 2 pairs × 2 hours, not one per flush
    store.down = False
    await flusher.flush()
    assert not flusher.unsaved
    by_pair_hour = {(r.rule, int(r.period_start) // 3600 * 3600): r for r in store.written}
    assert by_pair_hour[("send", H)].bytes_to_listener == 10 * 3600
    assert by_pair_hour[("send", H + 3600)].bytes_to_listener == 10 * 3600
    assert sum(r.bytes_to_sender for r in store.written) == 7200

"""What the relay counts: refusals, senders, and the bytes it carries per hybrid connection.

Plain integers, read by ``/metrics`` at scrape time and by the usage ledger
every flush (:class:`UsageFlusher`). Bytes are metered per (hybrid connection,
authorization rule): the rule is the one whose SAS token let the sender in,
``""`` for an anonymous sender (a hybrid connection that does not require
client authorization).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from passage.usage import HybridUsageRecord, write_back

__all__ = ["ANONYMOUS", "RelayMeters", "Traffic", "UsageFlusher", "coalesce"]

logger = logging.getLogger("passage.relay")

HOUR = 3600
"""Seconds in the ledger's unit: Hybrid Connections usage is kept per UTC hour."""

ANONYMOUS = ""
"""The rule of a sender no token was asked of."""


@dataclass(slots=True, eq=False)
class Traffic:
    """Bytes between the senders and listeners of one hybrid connection, under one rule."""

    path: str
    rule: str
    to_listener: int = 0
    """Sender → listener: request bodies, WebSocket messages from senders."""
    to_sender: int = 0
    """Listener → sender: response bodies, WebSocket messages from listeners."""
    requests: int = 0
    """Senders paired with a listener: HTTP requests relayed and WebSockets bridged."""
    flushed: tuple[int, int, int] = (0, 0, 0)
    flushed_at: float | None = None
    """When the last usage record of this pair ended; None before the first."""

    def unflushed(self) -> tuple[int, int, int]:
        """(to listener, to sender, requests) since :meth:`mark_flushed`."""
        return (
            self.to_listener - self.flushed[0],
            self.to_sender - self.flushed[1],
            self.requests - self.flushed[2],
        )

    def mark_flushed(self, deltas: tuple[int, int, int], now: float) -> None:
        self.flushed = (
            self.flushed[0] + deltas[0],
            self.flushed[1] + deltas[1],
            self.flushed[2] + deltas[2],
        )
        self.flushed_at = now


@dataclass(slots=True)
class RelayMeters:
    """Every counter of one relay."""

    refused: Counter[str] = field(default_factory=Counter)
    """Requests refused, by error code (``EndpointNotFound``, ``TokenMissingOrInvalid``...)."""
    senders: Counter[str] = field(default_factory=Counter)
    """Senders paired with a listener, by kind (``http``, ``websocket``)."""
    listeners_accepted: int = 0
    """Control channels opened (listeners connected) since start."""
    traffic: dict[tuple[str, str], Traffic] = field(default_factory=dict)

    def traffic_of(self, path: str, rule: str) -> Traffic:
        """The meter a sender's bytes go to; the same object for the life of the relay."""
        key = (path, rule)
        traffic = self.traffic.get(key)
        if traffic is None:
            traffic = self.traffic[key] = Traffic(path, rule)
        return traffic

    def bytes_by_direction(self) -> tuple[int, int]:
        """(to listener, to sender) over every hybrid connection since start."""
        return (
            sum(t.to_listener for t in self.traffic.values()),
            sum(t.to_sender for t in self.traffic.values()),
        )

    def collect_usage(self, now: float) -> list[HybridUsageRecord]:
        """A record for every (hybrid connection, rule) that carried something since the
        last collection; what they count is then flushed."""
        records: list[HybridUsageRecord] = []
        for traffic in self.traffic.values():
            deltas = traffic.unflushed()
            if not any(deltas):
                continue
            start = traffic.flushed_at if traffic.flushed_at is not None else now
            records.append(HybridUsageRecord(traffic.path, traffic.rule, start, now, *deltas))
            traffic.mark_flushed(deltas, now)
        return records


UsageSink = Callable[[list[HybridUsageRecord], int], Awaitable[None]]
"""Writes one batch under its number (``HybridUsageLedger.record``): a batch whose write
failed is offered again alone, under the same number, so it is never counted twice."""


class HybridOverflow(Protocol):
    """Where batches the store could not take go, durably (``passage.store.spill``)."""

    records: int
    """Records waiting there (the TURN edge's too: they share the file)."""

    def append_hybrid(self, sequence: int, records: Sequence[HybridUsageRecord]) -> None:
        """Keep batch ``sequence`` of this run; it is on disk when this returns."""

    async def replay(self, batches: int | None = None) -> int:
        """Write what waits into the ledgers; raise if the store is still down."""


def coalesce(records: list[HybridUsageRecord]) -> list[HybridUsageRecord]:
    """One record per (hybrid connection, rule, UTC hour the span starts in), summed:
    what the ledger keeps of them anyway (``HybridUsageLedger.record``). While the store
    is down, what waits grows by the hour, not by the flush."""
    merged: dict[tuple[str, str, int], HybridUsageRecord] = {}
    for record in records:
        key = (record.hybrid_connection, record.rule, int(record.period_start // HOUR))
        held = merged.get(key)
        merged[key] = record if held is None else HybridUsageRecord(
            record.hybrid_connection, record.rule,
            min(held.period_start, record.period_start), max(held.period_end, record.period_end),
            held.bytes_to_listener + record.bytes_to_listener,
            held.bytes_to_sender + record.bytes_to_sender,
            held.requests + record.requests,
        )  # fmt: skip
    return list(merged.values())


class UsageFlusher:
    """Hands the relay's usage records to the ledger every interval, and once more at
    :meth:`close`, one numbered batch at a time.

    A batch whose write failed goes to ``overflow`` (the data directory's spill) at
    once, so that neither a stop nor a ``kill -9`` before the store is back loses it; the
    spill is written back before anything newer. Without an overflow (or with a full
    disk) it is kept, alone under its number, and what comes after it is summed per
    hybrid connection, rule and hour (:func:`coalesce`).
    """

    def __init__(
        self,
        meters: RelayMeters,
        sink: UsageSink,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        overflow: HybridOverflow | None = None,
    ) -> None:
        self.meters = meters
        self.sink = sink
        self.interval = interval
        self.clock = clock
        self.overflow = overflow
        self.unsaved: list[HybridUsageRecord] = []
        self._retry: tuple[int, list[HybridUsageRecord]] | None = None
        """The batch whose write failed, with its number: written again first, alone."""
        self._sequence = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Records held in memory for the ledger."""
        return len(self.unsaved) + (len(self._retry[1]) if self._retry is not None else 0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def close(self) -> None:
        """Stop the periodic writes and write what is left (call after the relay closed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Write the spill back, then the failed batch, then what was metered since."""
        self.unsaved += self.meters.collect_usage(self.clock())
        async with self._lock:
            if not await self._write_spilled() or not await self._write_unsaved():
                self._keep()

    async def _write_spilled(self) -> bool:
        try:
            return await write_back(self.overflow)
        except Exception:
            logger.warning("usage spill: the store is still unreachable", exc_info=True)
            return False

    async def _write_unsaved(self) -> bool:
        if self._retry is not None:
            if not await self._write(*self._retry):
                return False
            self._retry = None
        if not self.unsaved:
            return True
        batch, self.unsaved = self.unsaved, []
        self._sequence += 1
        if not await self._write(self._sequence, batch):
            self._retry = (self._sequence, batch)
            return False
        return True

    async def _write(self, sequence: int, batch: list[HybridUsageRecord]) -> bool:
        try:
            await self.sink(batch, sequence)
        except Exception:
            logger.exception(
                "Hybrid Connections usage write failed; %d records kept for retry", len(batch)
            )
            return False
        return True

    def _keep(self) -> None:
        """The store is down (or the spill not all written back): to the spill, else
        summed in memory."""
        if self.overflow is not None:
            moved = self.held
            try:
                if self._retry is not None:
                    self.overflow.append_hybrid(*self._retry)
                    self._retry = None
                if self.unsaved:
                    self._sequence += 1
                    self.overflow.append_hybrid(self._sequence, self.unsaved)
                    self.unsaved = []
                if moved:
                    logger.warning(
                        "usage ledger unreachable (or still writing the spill back): %d Hybrid "
                        "Connections usage records moved to the spill file (%d records wait "
                        "there)", moved, self.overflow.records,
                    )  # fmt: skip
                return
            except OSError:
                logger.exception("usage spill could not be written; %d records stay in memory",
                                 self.held)  # fmt: skip
        self.unsaved = coalesce(self.unsaved)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from passage.usage import HybridUsageRecord

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


UsageSink = Callable[[list[HybridUsageRecord]], Awaitable[None]]


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
    :meth:`close`; a failed write keeps its records for the next one, summed per hybrid
    connection, rule and hour (:func:`coalesce`)."""

    def __init__(
        self,
        meters: RelayMeters,
        sink: UsageSink,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.meters = meters
        self.sink = sink
        self.interval = interval
        self.clock = clock
        self.unsaved: list[HybridUsageRecord] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def close(self) -> None:
        """Stop the periodic writes and write what is left (call after the relay closed)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        self.unsaved += self.meters.collect_usage(self.clock())
        if not self.unsaved:
            return
        batch, self.unsaved = self.unsaved, []
        try:
            await self.sink(batch)
        except Exception:
            logger.exception(
                "Hybrid Connections usage write failed; %d records kept for retry", len(batch)
            )
            self.unsaved = coalesce(batch + self.unsaved)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

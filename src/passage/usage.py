"""The usage records: what the TURN core and the Hybrid Connections relay meter and the
ledger stores.

They live apart from all three so that no layer imports another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

REPLAY_BATCHES = 1000
"""Spilled batches written back per flush while the relay runs: a long spill goes back
over several flushes, between which the new records are collected (and kept in memory,
or spilled behind it), so nothing grows while it does."""

USAGE_BUFFER_RECORDS = 10_000
"""Usage records held in memory while the ledger cannot be written (a few MB): the
default of ``--usage-buffer-records``."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One flush of one allocation's counters: deltas since the previous flush."""

    allocation_id: str
    """Unique per allocation (hex)."""
    username: str
    """The TURN username used (REST usernames look like ``1700000000:alice``)."""
    subject: str
    """Who is billed: the static user, the REST user part, or an identity id."""
    transport: str
    """Client transport: ``udp``, ``tcp`` or ``tls``."""
    client_address: str
    """``ip:port`` of the client."""
    relayed_address: str
    """``ip:port`` advertised as the relayed address (the first family's)."""
    started_at: float
    """Unix seconds when the allocation started."""
    period_start: float
    """Unix seconds: start of the span these deltas cover."""
    period_end: float
    """Unix seconds: end of that span."""
    bytes_to_peer: int
    packets_to_peer: int
    bytes_from_peer: int
    packets_from_peer: int
    ended: bool
    """True on the allocation's final record."""
    end_reason: str | None
    """Why it ended: ``expired``, ``refresh_zero``, ``client_closed``, ``shutdown``..."""


@dataclass(frozen=True, slots=True)
class HybridUsageRecord:
    """Bytes one hybrid connection carried under one authorization rule, since the previous
    record of the pair: deltas, as :class:`UsageRecord`'s are."""

    hybrid_connection: str
    """The hybrid connection's path (its canonical, lower-case name)."""
    rule: str
    """The authorization rule whose SAS token let the senders in; ``""`` for anonymous
    senders (a hybrid connection that requires no client authorization)."""
    period_start: float
    """Unix seconds: start of the span these deltas cover."""
    period_end: float
    """Unix seconds: end of that span."""
    bytes_to_listener: int
    """Sender → listener: request bodies and WebSocket message payloads."""
    bytes_to_sender: int
    """Listener → sender: response bodies and WebSocket message payloads."""
    requests: int
    """Senders paired with a listener: HTTP requests answered, WebSockets bridged."""


class Spilled(Protocol):
    """A spill's way back into the ledger (TURN's and Hybrid Connections' alike)."""

    records: int
    """Records waiting there."""

    async def replay(self, batches: int | None = None) -> int:
        """Write what waits into the ledger, at most ``batches`` batches (None: all);
        raise if the store is still down."""


class UsageOverflow(Spilled, Protocol):
    """Where usage records go past the memory bound while the store is down, durably
    (``passage.store.spill.UsageSpill``), and come back from when it is up."""

    def append(self, sequence: int, records: Sequence[UsageRecord]) -> None:
        """Keep batch ``sequence`` of this run; it is on disk when this returns."""


def _no_clock() -> float:
    return 0.0


def _not_timed(seconds: float) -> None:
    pass


async def write_back(
    overflow: Spilled | None,
    clock: Callable[[], float] = _no_clock,
    took: Callable[[float], None] = _not_timed,
) -> bool:
    """Write up to :data:`REPLAY_BATCHES` spilled batches back into the ledger, before
    anything newer: True when nothing waits in the spill (any more), False when more is
    left for the next flush. ``took`` gets how long a write-back took by ``clock``; what
    the store raised goes to the caller, which counts and logs it."""
    if overflow is None or not overflow.records:
        return True
    started = clock()
    try:
        await overflow.replay(REPLAY_BATCHES)
    finally:
        took(clock() - started)
    return not overflow.records

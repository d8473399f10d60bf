"""The usage record: what the TURN core meters and the ledger stores.

It lives apart from both so that neither layer imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass


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

"""Usage records for tests: one builder, so every test writes the ledger the same way."""

from __future__ import annotations

from passage.usage import UsageRecord


def flush(
    allocation_id: str = "a1",
    *,
    subject: str = "alice",
    start: float,
    end: float | None = None,
    sent: int = 0,
    received: int = 0,
    started_at: float | None = None,
    end_reason: str | None = None,
) -> UsageRecord:
    """One flush of ``allocation_id`` over [``start``, ``end``) (a minute by default):
    ``sent`` bytes in ``sent // 100`` packets to the peer, ``received`` back; the final
    one when it has an ``end_reason``."""
    return UsageRecord(
        allocation_id=allocation_id,
        username=f"1700000000:{subject}",
        subject=subject,
        transport="udp",
        client_address="192.0.2.1:5000",
        relayed_address="198.51.100.1:50000",
        started_at=start if started_at is None else started_at,
        period_start=start,
        period_end=start + 60 if end is None else end,
        bytes_to_peer=sent,
        packets_to_peer=sent // 100,
        bytes_from_peer=received,
        packets_from_peer=received // 100,
        ended=end_reason is not None,
        end_reason=end_reason,
    )

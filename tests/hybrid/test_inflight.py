"""Bytes held for HTTP senders: per hybrid connection and in total, given back whole."""

from __future__ import annotations

from passage.hybrid.inflight import InFlight, InFlightLimits


def test_reservations_stop_at_either_limit_and_come_back() -> None:
    held = InFlight(InFlightLimits(per_connection=100, total=150))
    assert held.reserve("a", 60) is None
    assert held.reserve("a", 41) == "per_connection"  # 101 for "a"
    assert held.reserve("a", 40) is None
    assert held.reserve("b", 60) == "total"  # 160 in all
    assert held.reserve("b", 50) is None
    assert (held.held("a"), held.held("b"), held.total) == (100, 50, 150)
    held.release("a", 60)
    held.release("a", 40)
    assert held.held("a") == 0 and held.total == 50
    assert held.reserve("b", 50) is None  # 100 for "b", 100 in all

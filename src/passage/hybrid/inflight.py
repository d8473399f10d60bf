"""Bytes the relay may hold for HTTP senders, per hybrid connection and in total.

An HTTP exchange in flight holds memory in the relay: an inline request its
whole body (up to 64 kB), a streamed one the windows of its sockets. Without a
bound, many slow senders to one hybrid connection (eight 16 MiB bodies to a
connection with no listener took 113 MiB) could take the relay's memory from
everyone. Each exchange reserves what it may hold before its body is read
and gives it back when it ends; past either limit the sender gets 503 at once.

Sans-IO: counts only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["InFlight", "InFlightLimits", "STREAM_RESERVATION"]

STREAM_RESERVATION = 512 * 1024
"""What one streamed exchange may hold in the relay: the unread window of its rendezvous
socket (256 KiB), the sender's body read ahead and the frames being written."""


@dataclass(frozen=True, slots=True)
class InFlightLimits:
    per_connection: int = 64 * 1024 * 1024
    """Bytes held for the HTTP senders of one hybrid connection."""
    total: int = 256 * 1024 * 1024
    """Bytes held for every HTTP sender of this node."""


class InFlight:
    """Reservations per hybrid connection; :meth:`reserve` refuses past a limit."""

    def __init__(self, limits: InFlightLimits) -> None:
        self.limits = limits
        self.total = 0
        self._by_path: Counter[str] = Counter()

    def held(self, path: str) -> int:
        return self._by_path[path]

    def reserve(self, path: str, size: int) -> str | None:
        """Hold ``size`` bytes for ``path``; None if granted, else which limit refused."""
        if self._by_path[path] + size > self.limits.per_connection:
            return "per_connection"
        if self.total + size > self.limits.total:
            return "total"
        self._by_path[path] += size
        self.total += size
        return None

    def release(self, path: str, size: int) -> None:
        """Give back what :meth:`reserve` granted."""
        self._by_path[path] -= size
        self.total -= size
        if self._by_path[path] <= 0:
            del self._by_path[path]

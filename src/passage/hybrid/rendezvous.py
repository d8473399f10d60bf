"""Rendezvous addresses: unguessable, single-use, short-lived capabilities.

When a sender arrives, the relay tells a listener where to meet it (the
``accept`` or ``request`` address). That address carries no token: knowing it
is the authorization, so its id is 128 random bits, it works once, and it
expires after :data:`RENDEZVOUS_LIFETIME` seconds (the protocol's "maximum to
assume is 30 seconds"). The table holds whatever the adapter needs to finish
the meeting; it never sees a socket.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["RENDEZVOUS_LIFETIME", "RendezvousTable"]

RENDEZVOUS_LIFETIME = 30.0
"""Seconds a rendezvous address stays valid."""

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    value: T
    expires: float


class RendezvousTable(Generic[T]):
    """Rendezvous ids → what waits behind them. Ids come from the caller (random)."""

    def __init__(self, lifetime: float = RENDEZVOUS_LIFETIME, max_entries: int = 100_000) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, rendezvous_id: str, value: T, now: float) -> bool:
        """Offer ``value`` under ``rendezvous_id`` until ``now + lifetime``; False when full."""
        self.expire(now)
        if len(self._entries) >= self.max_entries:
            return False
        self._entries[rendezvous_id] = _Entry(value, now + self.lifetime)
        return True

    def take(self, rendezvous_id: str, now: float) -> T | None:
        """The value behind ``rendezvous_id``, once; None if unknown, used or expired."""
        entry = self._entries.pop(rendezvous_id, None)
        if entry is None or entry.expires <= now:
            return None
        return entry.value

    def discard(self, rendezvous_id: str) -> None:
        """Withdraw an offer nobody took (the sender gave up)."""
        self._entries.pop(rendezvous_id, None)

    def expire(self, now: float) -> list[T]:
        """Drop and return every offer that expired at or before ``now``."""
        expired: list[T] = []
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]
            expired.append(entry.value)
        return expired

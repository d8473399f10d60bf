"""What the relay counts: refusals, senders, and the bytes it carries per hybrid connection.

Plain integers, read by ``/metrics`` at scrape time and by the usage ledger
every flush. Bytes are metered per (hybrid connection, authorization rule):
the rule is the one whose SAS token let the sender in, ``""`` for an anonymous
sender (a hybrid connection that does not require client authorization).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ANONYMOUS", "RelayMeters", "Traffic"]

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

    def unflushed(self) -> tuple[int, int, int]:
        """(to listener, to sender, requests) since :meth:`mark_flushed`."""
        return (
            self.to_listener - self.flushed[0],
            self.to_sender - self.flushed[1],
            self.requests - self.flushed[2],
        )

    def mark_flushed(self, deltas: tuple[int, int, int]) -> None:
        self.flushed = (
            self.flushed[0] + deltas[0],
            self.flushed[1] + deltas[1],
            self.flushed[2] + deltas[2],
        )


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

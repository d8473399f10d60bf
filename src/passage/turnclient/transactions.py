"""STUN client transactions (RFC 8489 §6.2): what to send again, and when to give up.

Sans-IO, time passed in. :meth:`ClientTransactions.start` takes an encoded
request and its transaction ID; :meth:`take_outgoing` hands the caller what
to put on the wire (a request once it starts, again at each retransmission);
:meth:`finish` ends a transaction when its answer comes; :meth:`get_timer` and
:meth:`handle_timer` drive retransmissions and report the transactions whose
time is up.

Over UDP a request is sent again after RTO, then after twice that, and so on
(RFC 8489 §6.2.1, RTO 500 ms by default). RFC 8489 gives up after Rc = 7
sends and a last wait of Rm × RTO (39.5 s); a caller that has to answer a
person sooner passes its own ``timeout``, and the request is sent again only
while that lasts. Over TCP and TLS nothing is sent again (§6.2.2): the stream
delivers it or breaks, and the transaction fails at ``timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RTO", "ClientTransactions"]

RTO = 0.5
"""First retransmission timeout over UDP, seconds (RFC 8489 §6.2.1 recommends 500 ms)."""


@dataclass(slots=True)
class _Transaction:
    data: bytes
    deadline: float
    next_send: float | None
    """When to send again; None over a stream, or when asked not to."""
    rto: float


class ClientTransactions:
    """The requests of one client that wait for an answer, keyed by transaction ID."""

    def __init__(self, *, reliable: bool, rto: float = RTO) -> None:
        self.reliable = reliable
        """True over TCP/TLS: nothing is sent twice."""
        self._rto = rto
        self._pending: dict[bytes, _Transaction] = {}
        self._outgoing: list[tuple[bytes, bytes]] = []

    def start(
        self,
        transaction_id: bytes,
        data: bytes,
        now: float,
        timeout: float,
        *,
        retransmit: bool = True,
    ) -> None:
        """Send ``data`` now and, over UDP, again until answered or ``timeout`` seconds pass.

        ``retransmit=False`` sends it once even over UDP (a measurement probe,
        whose loss is the thing measured). Raises ValueError for a transaction
        ID already waiting.
        """
        if transaction_id in self._pending:
            raise ValueError("a transaction with this ID is already waiting")
        again = None if self.reliable or not retransmit else now + self._rto
        deadline = now + timeout
        self._pending[transaction_id] = _Transaction(
            data, deadline, None if again is None or again >= deadline else again, self._rto
        )
        self._outgoing.append((transaction_id, data))

    def take_outgoing(self) -> list[tuple[bytes, bytes]]:
        """(transaction ID, bytes) to send now, in order; the caller sends each once."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def waiting(self, transaction_id: bytes) -> bool:
        """Whether ``transaction_id`` still waits for its answer."""
        return transaction_id in self._pending

    def finish(self, transaction_id: bytes) -> bool:
        """End a transaction (its answer came): no more retransmissions. False if unknown."""
        return self._pending.pop(transaction_id, None) is not None

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called; None when nothing waits."""
        times = [t.deadline for t in self._pending.values()]
        times += [t.next_send for t in self._pending.values() if t.next_send is not None]
        return min(times, default=None)

    def handle_timer(self, now: float) -> list[bytes]:
        """Queue the retransmissions that are due; return the IDs whose time is up.

        Those transactions are over: an answer that still comes is unknown.
        """
        expired = [tid for tid, t in self._pending.items() if now >= t.deadline]
        for transaction_id in expired:
            del self._pending[transaction_id]
        for transaction_id, transaction in self._pending.items():
            if transaction.next_send is not None and now >= transaction.next_send:
                self._outgoing.append((transaction_id, transaction.data))
                transaction.rto *= 2
                again = now + transaction.rto
                transaction.next_send = again if again < transaction.deadline else None
        return expired

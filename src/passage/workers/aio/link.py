"""A worker's end of the channel: the parent admits its allocations, takes its usage,
tells it of identity changes and moves kept ports between workers; it stops when told,
or when the parent is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from passage.usage import UsageRecord
from passage.workers.aio.channel import Channel
from passage.workers.aio.post import Posted, SocketPost
from passage.workers.protocol import (
    Admit,
    Admitted,
    Claim,
    ClusterView,
    Drain,
    EndAllocation,
    HandOver,
    Holding,
    Identity,
    Reload,
    Stop,
    Usage,
)

__all__ = ["CLAIM_TIMEOUT", "PARENT_GONE", "ParentLink", "ParentOrders"]

logger = logging.getLogger("passage.workers")

PARENT_GONE = "Server is stopping"
"""Why an allocation is refused when the parent cannot be asked (it is gone)."""

CLAIM_TIMEOUT = 5.0
"""Seconds a client's Allocate with another worker's RESERVATION-TOKEN waits for the kept
port; then it is answered as an unknown token (508). The parent answers at once when no
worker keeps it; this bounds a worker that dies or stalls meanwhile."""


@dataclass(frozen=True, slots=True)
class ParentOrders:
    """What a worker does when the parent says so."""

    identity: Callable[[object], None]
    """Keys or revocations changed: the parent's whole ``IdentityState``."""
    end_allocation: Callable[[str], None]
    hand_over: Callable[[bytes], Posted]
    """Give up the port kept for a token (``TurnEdge.hand_over_reservation``)."""
    reload: Callable[[object, object], None]
    """(``Config``, ``DataDir``) of a reload."""
    cluster: Callable[[ClusterView], None]
    """Cluster mode: where a full node sends new Allocates, whether the store is stale."""
    drain: Callable[[object], None]
    """The ``Alternates`` new Allocates are sent to."""
    stop: Callable[[], None]
    """Also called when the parent is gone: a worker never outlives it."""


class ParentLink:
    """What a worker's TURN edge calls to share quotas and usage with the parent."""

    def __init__(self, channel: Channel, post: SocketPost) -> None:
        self.channel = channel
        self.post = post
        self._waiting: dict[int, asyncio.Future[str | None]] = {}
        self._next_request = 1
        self._closed = False

    def holding(self, quota_key: str, held: int) -> None:
        """The core's ``on_quota``: tell the parent what ``quota_key`` holds here now."""
        self.channel.send(Holding(quota_key, held))

    async def admit(self, quota_key: str, held: int, extra: int) -> str | None:
        """The edge's ``quota_gate``: ask the parent; None when granted, else why not."""
        if self._closed:
            return PARENT_GONE
        request, self._next_request = self._next_request, self._next_request + 1
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting[request] = answer
        self.channel.send(Admit(request, quota_key, held, extra))
        return await answer

    async def claim(self, token: bytes) -> Posted:
        """The edge's ``reservation_finder``: the port another worker keeps for ``token``,
        now this process's; None when none does (or it takes over :data:`CLAIM_TIMEOUT`)."""
        if self._closed:
            return None
        request, self._next_request = self._next_request, self._next_request + 1
        posted = self.post.expect(request)
        self.channel.send(Claim(request, token))
        try:
            return await asyncio.wait_for(posted, CLAIM_TIMEOUT)
        except TimeoutError:
            logger.warning("no answer for a kept port in %.0f s: answered 508", CLAIM_TIMEOUT)
            return None

    async def usage(self, records: list[UsageRecord], sequence: int) -> None:
        """The edge's ``usage_sink``: hand the records to the parent, which writes the
        ledger under its own batch numbers (``sequence`` is the edge's: the channel loses
        nothing while both processes live). Raises ``ConnectionError`` when the parent is
        gone (the edge keeps them)."""
        if self._closed:
            raise ConnectionError("the parent process is gone")
        self.channel.send(Usage(tuple(records)))
        await self.channel.drain()

    async def serve(self, orders: ParentOrders) -> None:
        """Read the parent's messages and carry them out until it closes the channel."""
        try:
            async for message in self.channel.messages():
                if isinstance(message, Admitted):
                    answer = self._waiting.pop(message.request, None)
                    if answer is not None and not answer.done():
                        answer.set_result(None if message.granted else message.reason)
                elif isinstance(message, Identity):
                    orders.identity(message.state)
                elif isinstance(message, EndAllocation):
                    orders.end_allocation(message.allocation_id)
                elif isinstance(message, HandOver):
                    self._hand_over(orders, message)
                elif isinstance(message, Reload):
                    orders.reload(message.config, message.datadir)
                elif isinstance(message, ClusterView):
                    orders.cluster(message)
                elif isinstance(message, Drain):
                    orders.drain(message.alternates)
                elif isinstance(message, Stop):
                    orders.stop()
        finally:
            self._closed = True
            for answer in self._waiting.values():
                if not answer.done():
                    answer.set_result(PARENT_GONE)
            self._waiting.clear()
            self.post.close()
            orders.stop()

    def _hand_over(self, orders: ParentOrders, message: HandOver) -> None:
        posted = orders.hand_over(message.token)
        self.post.send(message.claim, posted)
        if posted is not None:
            posted[1].close()  # the parent holds it now

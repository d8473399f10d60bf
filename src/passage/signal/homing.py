"""Rooms across a cluster's nodes: each room is homed on the node of its first member.

The home node runs the room (:class:`~passage.signal.Rooms`); a member who connects to
another node is proxied: that node keeps the WebSocket, admits the token and watches its
standing, and passes frames to the home and deliveries back, as one-way messages in
order. When the home dies, its proxied members are closed with
:attr:`~passage.signal.CloseCode.SERVICE_RESTART`, which tells them to rejoin (the room
is then homed afresh). This is the interface the signaling adapter needs; the cluster's
Redis implements it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

__all__ = ["HOME_GONE", "JOIN_TIMEOUT", "RoomDirectory", "SERVICE"]

SERVICE = "signal"
"""The name node-to-node messages of signaling go under."""

JOIN_TIMEOUT = 1.0
"""Seconds a proxying node waits for the home to take a member in."""

HOME_GONE = "the room's home node went away; rejoin"
"""The close reason of a proxied member whose home node died."""


class RoomDirectory(Protocol):
    """Who homes which room, and the messages between a home and its proxies."""

    @property
    def node(self) -> str:
        """This node's name."""
        ...

    async def claim(self, room: str) -> str | None:
        """The room's home: this node if nobody had it; None when the directory cannot be
        reached (this node then runs the room alone)."""
        ...

    async def keep(self, rooms: Iterable[str]) -> None:
        """This node still homes ``rooms`` (a claim expires unless kept)."""
        ...

    async def release(self, room: str) -> None:
        """The room emptied here: its next member may home it anywhere."""
        ...

    def is_live(self, node: str) -> bool | None:
        """Whether ``node`` is live; None when this node cannot tell (no directory)."""
        ...

    async def ask(
        self, node: str, body: Mapping[str, Any], within: float
    ) -> Mapping[str, Any] | None: ...

    def tell(self, node: str, body: dict[str, Any]) -> None:
        """One message to ``node``, after the ones told before."""
        ...

    def serve(
        self,
        answer: Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]],
        hear: Callable[[str, dict[str, Any]], None],
    ) -> None: ...

"""The gateway store: which node holds which listener of which hybrid connection.

Azure Relay keeps this registry shared among its gateway nodes; a sender that
lands on any node is paired with a listener held by any other, and the
listener is told to meet it at the sender's node (``--public-url``). This is
the interface, with the in-memory implementation a single node uses; in cluster
mode the nodes share one more, a :class:`SharedGateway` (Redis, in
``passage.cluster.aio``), which also carries one node's asks to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from passage.hybrid.entities import HybridConnectionPath

__all__ = [
    "ACK_TIMEOUT",
    "MAX_ATTEMPTS",
    "Answer",
    "GatewayStore",
    "InMemoryGatewayStore",
    "ListenerRef",
    "SharedGateway",
]

ACK_TIMEOUT = 1.0
"""Seconds a node waits for another to confirm it passed a command to its listener."""

MAX_ATTEMPTS = 3
"""Listeners a sender is offered to before it gets the answer for none reachable."""

Answer = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
"""What answers another node's ask: its JSON object in, the answer's out."""


@dataclass(frozen=True, slots=True)
class ListenerRef:
    listener_id: str
    node_id: str
    """The gateway node holding the listener's control channel."""


class GatewayStore(Protocol):
    def register(self, path: HybridConnectionPath, listener: ListenerRef, limit: int) -> bool:
        """Record ``listener``; False (and nothing recorded) if ``limit`` are already there."""
        ...

    def unregister(self, path: HybridConnectionPath, listener: ListenerRef) -> None: ...

    def listeners(self, path: HybridConnectionPath) -> Sequence[ListenerRef]: ...

    def pick(self, path: HybridConnectionPath) -> ListenerRef | None:
        """A listener of ``path`` chosen at random (Azure: "random order, best effort")."""
        ...


class InMemoryGatewayStore:
    """One node's registry. ``choose`` picks among listeners (``random.choice`` in
    production; the core draws no randomness of its own, so tests can pass their own)."""

    def __init__(self, choose: Callable[[Sequence[ListenerRef]], ListenerRef]) -> None:
        self._listeners: dict[HybridConnectionPath, list[ListenerRef]] = {}
        self._choose = choose

    def register(self, path: HybridConnectionPath, listener: ListenerRef, limit: int) -> bool:
        held = self._listeners.setdefault(path, [])
        if len(held) >= limit:
            return False
        held.append(listener)
        return True

    def unregister(self, path: HybridConnectionPath, listener: ListenerRef) -> None:
        held = self._listeners.get(path, [])
        if listener in held:
            held.remove(listener)
        if not held:
            self._listeners.pop(path, None)

    def listeners(self, path: HybridConnectionPath) -> Sequence[ListenerRef]:
        return tuple(self._listeners.get(path, ()))

    def pick(self, path: HybridConnectionPath) -> ListenerRef | None:
        held = self._listeners.get(path)
        return self._choose(held) if held else None


class SharedGateway(Protocol):
    """The cluster's gateway store, and the way to reach the node holding a listener.

    Every method fails fast and says so rather than raise: None where the shared
    store could not be reached, so the relay falls back to what this node holds.
    """

    async def register(
        self, path: HybridConnectionPath, listener_id: str, limit: int
    ) -> bool | None:
        """Record this node's listener unless ``limit`` live ones are already there
        (dead nodes' entries are dropped first); None: the store is unreachable."""
        ...

    async def unregister(self, path: HybridConnectionPath, listener_id: str) -> None: ...

    async def reassert(self, held: Mapping[HybridConnectionPath, Sequence[str]]) -> None:
        """Put back every listener this node holds (after Redis lost them)."""
        ...

    async def elsewhere(self, path: HybridConnectionPath) -> Sequence[ListenerRef] | None:
        """Listeners of ``path`` held by other live nodes; None: the store is unreachable."""
        ...

    async def ask(
        self, node: str, body: Mapping[str, Any], within: float
    ) -> Mapping[str, Any] | None:
        """``body`` to ``node``, and its answer; None when none came within ``within`` s."""
        ...

    def serve(self, answer: Answer, reassert: Callable[[], Awaitable[None]]) -> None:
        """Answer other nodes' asks with ``answer``; run ``reassert`` after each reconnect."""
        ...

    def node_hosts(self) -> Sequence[str]:
        """The hosts of the live nodes' public URLs and TURN URLs, as last read."""
        ...

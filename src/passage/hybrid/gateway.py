"""The gateway store: which node holds which listener of which hybrid connection.

Azure Relay keeps this registry shared among its gateway nodes; a sender that
lands on any node is paired with a listener held by any other, and the
listener is told to meet it at the sender's node (``--public-url``). This is
the interface, with the in-memory implementation a single node uses; several
nodes will share one through Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from passage.hybrid.entities import HybridConnectionPath

__all__ = ["GatewayStore", "InMemoryGatewayStore", "ListenerRef"]


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

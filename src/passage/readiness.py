"""Whether this node should be sent new work: what ``/readyz`` answers.

:class:`Readiness` holds the process's own say: whether every listener is
bound yet, and whether it is draining (``SIGTERM`` starts a drain: existing
allocations and bridges finish, new clients go elsewhere). Whoever starts a
drain calls :meth:`Readiness.start_draining`; the operators' listener asks
:meth:`Readiness.problems` and checks the store itself. A leaf: flags and
words, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Readiness"]


@dataclass(slots=True)
class Readiness:
    """The flags ``/readyz`` reads; the process sets them."""

    listening: bool = False
    """Every listener is bound (set once ``passage serve`` has started them all)."""
    draining: bool = False
    """A drain has started: this node takes no new allocations, listeners or rooms."""
    drain_reason: str = ""
    """Why, in a few words (``SIGTERM``), for the ``/readyz`` body."""
    degraded: str = ""
    """What this node serves without, in a few words (cluster mode without Redis); it is
    still ready: it serves alone rather than not at all."""

    def start_draining(self, reason: str) -> None:
        """From now on this node is not ready; :attr:`drain_reason` says why."""
        self.draining = True
        self.drain_reason = reason

    def problems(self) -> dict[str, str]:
        """What keeps this node from being ready, by check name; empty when ready."""
        found: dict[str, str] = {}
        if not self.listening:
            found["listeners"] = "not every listener is bound yet"
        if self.draining:
            found["draining"] = f"draining ({self.drain_reason or 'shutting down'})"
        return found

"""Whether this server is draining: the one flag readiness, the cluster advert and the
products read.

SIGTERM starts a drain (:mod:`passage.lifecycle`): new Allocates are sent elsewhere,
what is live keeps running until it ends or the drain's deadline passes, and then the
server stops. Time is passed in; this module only keeps the state.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Drain"]


@dataclass(slots=True)
class Drain:
    """Not draining until :meth:`begin`; then draining, with a deadline, until the process ends."""

    started_at: float | None = None
    """Unix seconds the drain began; None while serving normally."""

    deadline: float | None = None
    """Unix seconds after which the server stops whatever is still live."""

    @property
    def draining(self) -> bool:
        """True once SIGTERM started a drain: ``/readyz`` answers not ready."""
        return self.started_at is not None

    def begin(self, now: float, timeout: float) -> bool:
        """Start draining now, for at most ``timeout`` seconds; False if already draining."""
        if self.started_at is not None:
            return False
        self.started_at, self.deadline = now, now + timeout
        return True

    def set_timeout(self, timeout: float) -> None:
        """A reload changed the drain timeout: the deadline of a drain under way follows."""
        if self.started_at is not None:
            self.deadline = self.started_at + timeout

    def overdue(self, now: float) -> bool:
        """True once a drain's deadline has passed."""
        return self.deadline is not None and now >= self.deadline

    def remaining(self, now: float) -> float:
        """Seconds until the deadline (0 when past, or when not draining)."""
        return max(0.0, self.deadline - now) if self.deadline is not None else 0.0

"""When a worker that died is started again: at once, unless it keeps dying young.

A worker that ran at least :data:`STEADY` seconds is restarted at once: one crash
(or ``kill -9``) costs its clients their allocations, not the port. One that dies
sooner waits, twice as long each time in a row (from :data:`FIRST_DELAY` to
:data:`MAX_DELAY`), so a worker that cannot start does not spin a core.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIRST_DELAY", "MAX_DELAY", "STEADY", "RestartPolicy"]

STEADY = 10.0
"""Seconds a worker must have run for its death to be restarted at once."""

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
"""Seconds before restarting a worker that died young: the first time, and at most."""


@dataclass(slots=True)
class RestartPolicy:
    """One worker slot's restarts, time passed in."""

    delay: float = 0.0
    """The wait before the next start, as of the last death."""

    def died(self, started_at: float, now: float) -> float:
        """The worker started at ``started_at`` died at ``now``: seconds to wait before the
        next start."""
        if now - started_at >= STEADY:
            self.delay = 0.0
        else:
            self.delay = min(MAX_DELAY, max(FIRST_DELAY, self.delay * 2))
        return self.delay

"""Which candidate pair to nominate: the best one that works, not the first.

aioice, as controlling agent, nominates aggressively: every check carries
USE-CANDIDATE, so the first pair to succeed wins. Relay pairs succeed at
once; a direct pair through two NATs succeeds only when both sides' checks
have crossed (hole punching), a round trip or a retransmission later. So
aggressive nomination settles on a relay where a direct path works.

Passage's agent checks without USE-CANDIDATE and then nominates one pair
(regular nomination, RFC 8445 §8.1.1) by this rule: the highest-priority
pair that succeeded, as soon as no pair of higher priority is still being
checked, or at the latest :attr:`NominationPolicy.grace` seconds after the
first success. Pairs towards another site's private address never answer and
only time out (some 40 s), so the grace bounds how long they may hold up the
connection; hole punching needs well under a second of it.

Pure: the agent passes the pairs' priorities and states and ``now``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_GRACE", "CheckState", "Nominate", "NominationPolicy", "PairView", "Wait"]

DEFAULT_GRACE = 1.5
"""Seconds after the first success to wait for a better pair."""


class CheckState(enum.Enum):
    PENDING = "pending"
    """Frozen, waiting or in progress: it may still succeed."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PairView:
    key: int
    """The agent's handle for the pair."""
    priority: int
    """RFC 8445 §6.1.2.3 pair priority."""
    state: CheckState


@dataclass(frozen=True, slots=True)
class Nominate:
    key: int


@dataclass(frozen=True, slots=True)
class Wait:
    until: float | None
    """Decide again at this time, or (None) when another check finishes."""


@dataclass(frozen=True, slots=True)
class NominationPolicy:
    grace: float = DEFAULT_GRACE
    """Seconds after the first success to wait for a better pair to succeed."""

    def decide(
        self, pairs: Sequence[PairView], first_success: float | None, now: float
    ) -> Nominate | Wait:
        """Nominate the best pair that succeeded, once nothing better can, or grace is up."""
        succeeded = [pair for pair in pairs if pair.state is CheckState.SUCCEEDED]
        if not succeeded or first_success is None:
            return Wait(None)
        best = max(succeeded, key=lambda pair: pair.priority)
        better_pending = any(
            pair.state is CheckState.PENDING and pair.priority > best.priority for pair in pairs
        )
        deadline = first_success + self.grace
        if not better_pending or now >= deadline:
            return Nominate(best.key)
        return Wait(deadline)

"""The allocation quotas of ``passage serve --workers N``, held by the parent for all workers.

Each worker's TURN core counts what it holds per quota key (allocations being bound or
live, and ports EVEN-PORT(R) keeps) and reports every change (:class:`~.protocol.Holding`).
Before binding a new allocation it asks (:class:`~.protocol.Admit`): the parent grants it
when the sum over every worker stays within ``turn.max_allocations_per_user`` for the key
and ``turn.max_allocations_total`` in all. The parent handles one message at a time, so
two workers asking at once are answered in turn, never both on the same headroom.
When a worker dies, what it held is forgotten (:meth:`SharedQuota.forget`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

__all__ = ["SharedQuota"]

USER_QUOTA = "Allocation quota reached"
SERVER_QUOTA = "Server allocation quota reached"
"""The reasons an admission is refused: the 486 reason phrases the core sends."""


class SharedQuota:
    """Units held per worker and quota key, their sums, and admission against the limits."""

    def __init__(self, max_per_user: int, max_total: int) -> None:
        self.max_per_user = max_per_user
        self.max_total = max_total
        self._held: dict[int, Counter[str]] = {}
        self._per_key: Counter[str] = Counter()
        self.total = 0
        """Units held by every worker, for every key."""
        self.elsewhere: Mapping[str, int] = {}
        """Cluster mode: allocations per quota key on the cluster's other nodes, as last read;
        the per-user limit counts them too."""

    def held(self, quota_key: str) -> int:
        """Units every worker holds for ``quota_key``."""
        return self._per_key[quota_key]

    def per_key(self) -> dict[str, int]:
        """Units every worker holds, per quota key (what this node tells the cluster)."""
        return dict(self._per_key)

    def set(self, worker: int, quota_key: str, held: int) -> None:
        """``worker`` now holds ``held`` units of ``quota_key`` (a :class:`Holding`)."""
        mine = self._held.setdefault(worker, Counter())
        change = held - mine[quota_key]
        mine[quota_key] = held
        self.total += change
        self._per_key[quota_key] += change
        for counter in (mine, self._per_key):
            if counter[quota_key] <= 0:
                del counter[quota_key]

    def admit(self, worker: int, quota_key: str, held: int, extra: int) -> str | None:
        """Record ``held`` for ``worker`` and say whether it may keep it and ``extra`` more:
        None when granted, else the reason. A refused worker releases the unit it asked
        for, so it is taken off here at once rather than when its :class:`Holding` comes."""
        self.set(worker, quota_key, held)
        reason = None
        if self.total + extra > self.max_total:
            reason = SERVER_QUOTA
        elif (
            self._per_key[quota_key] + self.elsewhere.get(quota_key, 0) + extra > self.max_per_user
        ):
            reason = USER_QUOTA
        if reason is not None:
            self.set(worker, quota_key, held - 1)
        return reason

    def forget(self, worker: int) -> None:
        """``worker`` is gone: what it held is free."""
        for quota_key, held in list(self._held.pop(worker, Counter()).items()):
            self._per_key[quota_key] -= held
            self.total -= held
            if self._per_key[quota_key] <= 0:
                del self._per_key[quota_key]

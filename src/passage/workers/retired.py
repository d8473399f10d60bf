"""What the workers that died had counted, kept by the parent so its sums never go back.

A worker's counters live in its process: the one that replaces it after a crash or a
``kill -9`` counts again from zero. The parent sums the workers' last reports for
``/metrics`` and the console, so without this a worker's death would read as a counter
reset (Prometheus's ``rate()`` would see one, and the console's totals would drop).
When a worker is gone, its last report's monotonic samples (counters, histogram
buckets, counts and sums) are added here, and the parent adds these to the live
workers' sums. Gauges (allocations, channels held now) are not: a dead worker holds
nothing. What a worker counted after its last report (at most one report interval) is
lost, as its usage is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from passage.live import TurnCounters

__all__ = ["MONOTONIC", "Family", "RetiredCounts"]

Sample = tuple[str, tuple[tuple[str, str], ...], float]
Family = tuple[str, str, str, tuple[Sample, ...]]
"""A metric family as a worker reports it (``passage.scrape.PlainFamily``): name,
documentation, type, samples as (sample name, labels, value)."""

MONOTONIC = frozenset({"counter", "histogram", "summary"})
"""Family types whose samples only grow (a ``_created`` timestamp excepted)."""


class RetiredCounts:
    """The monotonic part of every dead worker's last report, summed."""

    def __init__(self) -> None:
        self._kinds: dict[str, tuple[str, str]] = {}
        self._sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        self._errors: Counter[int] = Counter()
        self._drops: Counter[str] = Counter()
        self._auth_failures: Counter[str] = Counter()
        self._started = 0
        self._ended = 0

    def fold(self, families: Iterable[Family], counters: TurnCounters | None) -> None:
        """A worker is gone: keep what its last report (``families``, ``counters``) counted."""
        for name, documentation, kind, samples in families:
            if kind not in MONOTONIC:
                continue
            self._kinds.setdefault(name, (documentation, kind))
            sums = self._sums.setdefault(name, {})
            for sample_name, labels, value in samples:
                if not sample_name.endswith("_created"):
                    sums[(sample_name, labels)] = sums.get((sample_name, labels), 0.0) + value
        if counters is not None:
            self._errors.update(counters.errors)
            self._drops.update(counters.drops)
            self._auth_failures.update(counters.auth_failures)
            self._started += counters.allocations_started
            self._ended += counters.allocations_ended

    def families(self) -> tuple[Family, ...]:
        """The kept samples, as one more worker's report to sum with the live ones'."""
        return tuple(
            (name, documentation, kind,
             tuple((sample, labels, value) for (sample, labels), value in self._sums[name].items()))
            for name, (documentation, kind) in self._kinds.items()
        )  # fmt: skip

    def counters(self) -> TurnCounters:
        """The kept console counters (nothing live: a dead worker holds no allocation)."""
        return TurnCounters(
            live_by_transport={},
            allocations_started=self._started,
            allocations_ended=self._ended,
            errors=dict(self._errors),
            drops=dict(self._drops),
            auth_failures=dict(self._auth_failures),
        )

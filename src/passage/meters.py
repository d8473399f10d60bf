"""Plain counters that ``/metrics`` reads at scrape time.

The services count with integers and ``Counter`` objects they own; nothing on
a packet or request path calls a metrics library. :class:`Histogram` is the
one shape those counters lack: a latency distribution as a fixed list of
bucket counts, a sum and a total, which the scrape turns into a Prometheus
histogram. :class:`RequestMeter` keeps one per route, with a count per
(route, status). Every label value these hold comes from the code (a route's
name, an HTTP status), never from what a client sent, so their number is
bounded.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "Histogram", "RequestMeter"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds in seconds, as Prometheus's default buckets, one millisecond first."""


@dataclass(slots=True)
class Histogram:
    """Observations counted into buckets: ``counts[i]`` is how many fell in
    (``bounds[i-1]``, ``bounds[i]``]; the last count is those above every bound."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus wants them, ``+Inf`` last."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            pairs.append((_bound_text(bound), running))
        pairs.append(("+Inf", running + self.counts[-1]))
        return pairs


def _bound_text(bound: float) -> str:
    return repr(float(bound))


@dataclass(slots=True)
class RequestMeter:
    """Requests by (route, status), and their latency by route."""

    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latency: dict[str, Histogram] = field(default_factory=dict)

    def record(self, route: str, status: int, seconds: float | None) -> None:
        """One answered request; ``seconds`` None leaves the latency out (a WebSocket,
        whose duration is the session's, not the request's)."""
        self.responses[(route, status)] += 1
        if seconds is None:
            return
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = Histogram()
        histogram.observe(seconds)

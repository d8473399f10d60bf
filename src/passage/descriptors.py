"""This process's file descriptors: the limit raised at start, and how many are left.

Every TURN allocation holds a UDP socket, every TCP or TLS client and every
HTTP connection one more. A process that runs out answers TURN Allocates 508
and cannot accept on any listener, so one flooded listener must not be able
to take the last ones. :func:`raise_limit` lifts the soft ``RLIMIT_NOFILE``
to the hard limit at start (the soft limit is often 1,024 while the hard one
allows far more); :class:`DescriptorBudget` tells the HTTP front door how
many are left, so that it can keep a reserve for the others
(:attr:`passage.http_limits.HttpLimits.descriptor_reserve`).

Counting open descriptors (``/proc/self/fd``) costs a system call per
descriptor, so the budget counts at most every ``recount_interval`` seconds
and in between adds the connections the front door opened and takes away
those it closed. Time is passed in.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DescriptorBudget", "Raised", "count_open", "raise_limit"]

logger = logging.getLogger("passage")

DESCRIPTOR_DIRECTORIES = ("/proc/self/fd", "/dev/fd")
UNLIMITED_CAP = 1 << 20
"""What an unlimited hard limit is taken as: the Linux default ``fs.nr_open``."""


@dataclass(frozen=True, slots=True)
class Raised:
    """The soft limit before and after :func:`raise_limit`."""

    before: int
    after: int


def raise_limit() -> Raised:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; what it was and is now.

    An unlimited hard limit is capped at :data:`UNLIMITED_CAP`. A refusal by
    the system leaves the limit as it was (the caller's log says so).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return Raised(soft, soft)
        return Raised(soft, wanted)
    return Raised(soft, soft)


def soft_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` now (unlimited: :data:`UNLIMITED_CAP`)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return UNLIMITED_CAP if soft == resource.RLIM_INFINITY else soft


def count_open() -> int | None:
    """Descriptors this process has open now; None where the system does not say."""
    for directory in DESCRIPTOR_DIRECTORIES:
        try:
            return len(os.listdir(directory)) - 1  # the directory's own descriptor
        except OSError:
            continue
    return None


class DescriptorBudget:
    """How many descriptors the process may still open, counted now and then.

    Call :meth:`opened` and :meth:`closed` for each connection the caller
    holds; :meth:`left` counts afresh when its count is older than
    ``recount_interval`` seconds, and estimates in between.
    """

    def __init__(
        self,
        limit: Callable[[], int] = soft_limit,
        count: Callable[[], int | None] = count_open,
        *,
        recount_interval: float = 0.25,
    ) -> None:
        self._limit = limit
        self._count = count
        self.recount_interval = recount_interval
        self._counted: int | None = None
        self._counted_at: float | None = None
        self._since = 0
        """Connections opened minus closed since the last count."""

    def opened(self) -> None:
        self._since += 1

    def closed(self) -> None:
        self._since -= 1

    def limit(self) -> int:
        """How many the process may have open at once (its soft limit)."""
        return self._limit()

    def left(self, now: float) -> int | None:
        """Descriptors the process may still open at ``now``; None where they cannot be counted."""
        stale = self._counted_at is None or now - self._counted_at >= self.recount_interval
        if stale:
            self._counted, self._counted_at, self._since = self._count(), now, 0
        if self._counted is None:
            return None
        return self._limit() - (self._counted + self._since)

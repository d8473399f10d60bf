"""Log lines that a remote party can cause, bounded in number, with time passed in.

How often the server sees a malformed request, an abandoned body or a refused
connection is the client's choice. One line each is what an operator wants to
read; one line each without a bound lets anyone fill the disk.
:class:`RateLimitedLog` writes at most ``burst`` lines at once and ``rate`` a
second after that (a token bucket), and the first line it writes after
leaving some out says how many it left out. It never writes a traceback: what
a client can trigger is expected, and its line says what happened.

Time is passed in (``now``, seconds on any monotonic clock), so tests need no
clock; adapters pass ``time.monotonic()``. The bucket is
:class:`passage.limiter.AnswerLimiter`'s. A leaf: it writes only through the
:class:`logging.Logger` it is given.
"""

from __future__ import annotations

import logging

from passage.limiter import AnswerLimiter

__all__ = ["RateLimitedLog"]

_ONE_BUDGET = "lines"
"""The bucket's key: the budget is the log's (the disk's), not a source's."""


class RateLimitedLog:
    """One logger's lines about what clients did, at most ``burst`` at once and ``rate`` a second.

    Each instance is one budget: give each kind of event its own (malformed
    requests, refused connections), so that a flood of one does not hide the
    other.
    """

    def __init__(self, logger: logging.Logger, *, rate: float = 10.0, burst: int = 50) -> None:
        """Raises :class:`ValueError` unless ``rate`` > 0 and ``burst`` >= 1."""
        if not rate > 0 or burst < 1:
            raise ValueError(f"RateLimitedLog needs rate > 0 and burst >= 1; got {rate}, {burst}")
        self.logger = logger
        self.rate = rate
        self.burst = burst
        self.suppressed = 0
        """Lines left out since the last one written."""
        self._budget = AnswerLimiter(rate, burst, max_tracked=1)

    def log(self, now: float, level: int, message: str, *args: object) -> bool:
        """Write ``message % args`` at ``level`` if the budget allows at ``now``; True if written.

        A line left out is counted; the next line written is preceded by one
        saying how many were. Lines below the logger's level cost nothing.
        """
        if not self.logger.isEnabledFor(level):
            return False
        if not self._budget.allow(_ONE_BUDGET, now):
            self.suppressed += 1
            return False
        if self.suppressed:
            self.logger.log(
                level,
                "%d similar lines left out (at most %d at once, then %g a second)",
                self.suppressed, self.burst, self.rate,
            )  # fmt: skip
            self.suppressed = 0
        self.logger.log(level, message, *args)
        return True

    def warning(self, now: float, message: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(now, logging.WARNING, message, *args)

    def info(self, now: float, message: str, *args: object) -> bool:
        """:meth:`log` at INFO."""
        return self.log(now, logging.INFO, message, *args)

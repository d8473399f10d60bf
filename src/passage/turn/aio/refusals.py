"""The operator's log of refused TURN requests, bounded in lines per second.

The core reports every error answer it sends (``TurnServer(on_refused=...)``).
A client can earn those as fast as it can send: over TCP nothing limits
unauthenticated 400s, and spoofed UDP sources each have a burst of their own.
One log line each would let anyone fill the disk, so :class:`RefusalLog`
writes at most ``burst`` lines at once and ``rate`` a second after that, and
says how many it left out when it writes again. The once-a-minute ``stats:``
line counts every refusal by code either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from passage.limiter import AnswerLimiter
from passage.stun import Method
from passage.turn.server import Refused

REFUSAL_LINES_PER_SECOND = 10
REFUSAL_LINE_BURST = 100

_KEY = "refusals"
"""One bucket for the whole log: it is the disk that needs protecting, not a source."""


class RefusalLog:
    """An ``on_refused`` callback for the TURN core that logs at a bounded rate."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        rate: int = REFUSAL_LINES_PER_SECOND,
        burst: int = REFUSAL_LINE_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._limiter = AnswerLimiter(rate, burst, max_tracked=1)
        self._clock = clock
        self.suppressed = 0
        """Refusals not logged since the last line written."""

    def __call__(self, refused: Refused) -> None:
        if not self._limiter.allow(_KEY, self._clock()):
            self.suppressed += 1
            return
        if self.suppressed:
            self._logger.warning(
                "%d more refused requests were not logged (at most %d lines a second)",
                self.suppressed, self._limiter.rate,
            )  # fmt: skip
            self.suppressed = 0
        self._logger.info(
            "refused %s from %s: %d %s",
            method_name(refused.method),
            refused.five_tuple.describe(),
            refused.code,
            refused.detail,
        )


def method_name(method: int) -> str:
    """``allocate``, ``refresh``, ...; ``method 0x00a`` for one we do not know."""
    try:
        return Method(method).name.lower()
    except ValueError:
        return f"method 0x{method:03x}"

"""Failures per source address in a fixed window, with time passed in: the failure limiter.

A client that keeps failing authentication is guessing passwords or, over
UDP, reflecting 401s at a spoofed victim; a Hybrid Connections listener that
keeps failing to listen (hyco-ws retries thousands of times a second) is a
storm. After ``limit`` failures inside one ``window`` its requests are
dropped or refused until the window ends. The TURN core uses it for
MESSAGE-INTEGRITY failures, the Hybrid Connections relay for failed listens.

The window is fixed and starts at the source's first failure, so the state
per source is two numbers and every call is O(1) amortised. Memory is bounded
by ``max_tracked``: a flood of distinct source addresses evicts the oldest
windows first. That eviction can free a blocked address early, which is the
price of a bound; the failures it then earns are still limited by the window.

A leaf: it imports nothing of ours and does no I/O.
"""

from __future__ import annotations


class FailureLimiter:
    """Counts failures per source IP in a fixed window.

    Call :meth:`blocked` before authenticating a request (drop it if True) and
    :meth:`record_failure` after a failed one. :meth:`forget_expired` may run on
    a timer; :meth:`record_failure` also tidies as it goes.
    """

    def __init__(self, limit: int, window: float, max_tracked: int = 65536) -> None:
        """``limit`` failures per ``window`` seconds, per IP; a ``limit`` of 0 never blocks.

        Raises :class:`ValueError` for a negative ``limit``, a non-positive
        ``window`` or ``max_tracked``.
        """
        if limit < 0 or window <= 0 or max_tracked <= 0:
            raise ValueError(
                f"FailureLimiter needs limit >= 0, window > 0, max_tracked > 0; "
                f"got {limit}, {window}, {max_tracked}"
            )
        self.limit = limit
        self.window = window
        self.max_tracked = max_tracked
        # ip -> [window start, failures]. Insertion order is window-start order
        # because an IP is re-inserted whenever its window restarts.
        self._windows: dict[str, list[float]] = {}

    def __len__(self) -> int:
        """How many source IPs are tracked now."""
        return len(self._windows)

    def blocked(self, ip: str, now: float) -> bool:
        """True while ``ip`` has made ``limit`` failures in its current window."""
        entry = self._windows.get(ip)
        if entry is None or self.limit == 0:
            return False
        start, failures = entry
        return now < start + self.window and failures >= self.limit

    def record_failure(self, ip: str, now: float) -> None:
        """Count one failed authentication from ``ip`` at ``now``."""
        if self.limit == 0:
            return
        entry = self._windows.get(ip)
        if entry is not None and now < entry[0] + self.window:
            entry[1] += 1
            return
        self.forget_expired(now)
        self._windows.pop(ip, None)
        while len(self._windows) >= self.max_tracked:
            del self._windows[next(iter(self._windows))]
        self._windows[ip] = [now, 1]

    def forget_expired(self, now: float) -> None:
        """Drop every window that ended at or before ``now``."""
        windows = self._windows
        while windows:
            ip = next(iter(windows))
            if now < windows[ip][0] + self.window:
                return
            del windows[ip]

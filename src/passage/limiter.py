"""Per-source limits, with time passed in: failures in a window, and answers by token bucket.

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

:class:`AnswerLimiter` bounds the answers a source gets by a token bucket: the
TURN core uses it for answers to requests that have not authenticated (RFC 8489
§9.2.4 challenges, 400s, 420s) over UDP, where the source address is whatever
the sender wrote; without it a spoofed source turns the server into a
reflector aimed at a victim.

A leaf: it imports nothing of ours and does no I/O.
"""

from __future__ import annotations

import ipaddress


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


def source_key(ip: str) -> str:
    """The unit a per-source limit counts: an IPv4 address, or an IPv6 /64.

    One IPv6 host or LAN holds a whole /64, so counting single IPv6 addresses
    would let one victim be named by 2**64 spellings. An IPv4-mapped address (a
    dual-stack socket's view of an IPv4 peer) is that IPv4 address.
    """
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip.partition("%")[0])
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), False).network_address)


class AnswerLimiter:
    """A token bucket per source (:func:`source_key`) for answers worth limiting, time passed in.

    Each source may have ``burst`` answers at once and ``rate`` per second after
    that. Call :meth:`allow` before answering and stay silent when it says no.
    A source whose bucket has refilled is forgotten (:meth:`forget_full`, also
    run as it goes), and at most ``max_tracked`` sources are held: a flood of
    distinct sources evicts the least recently answered first, which gives an
    evicted source a full bucket again, the price of a bound.
    """

    def __init__(self, rate: float, burst: int, max_tracked: int = 65536) -> None:
        """A ``rate`` of 0 never limits. Raises :class:`ValueError` for negative
        values, a ``burst`` below 1 with a non-zero rate, or ``max_tracked`` below 1."""
        if rate < 0 or burst < 0 or max_tracked <= 0 or (rate and burst < 1):
            raise ValueError(
                f"AnswerLimiter needs rate >= 0, burst >= 1, max_tracked > 0; "
                f"got {rate}, {burst}, {max_tracked}"
            )
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        # key -> [tokens, last update]; insertion order is least recently answered first.
        self._buckets: dict[str, list[float]] = {}

    def __len__(self) -> int:
        """How many sources are tracked now."""
        return len(self._buckets)

    def allow(self, ip: str, now: float) -> bool:
        """True (and one answer spent) if ``ip``'s source may be answered at ``now``."""
        if not self.rate:
            return True
        key = source_key(ip)
        entry = self._buckets.pop(key, None)
        if entry is None:
            self.forget_full(now)
            while len(self._buckets) >= self.max_tracked:
                del self._buckets[next(iter(self._buckets))]
            tokens = float(self.burst)
        else:
            tokens = min(self.burst, entry[0] + max(0.0, now - entry[1]) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = [tokens - 1.0 if allowed else tokens, now]
        return allowed

    def forget_full(self, now: float) -> None:
        """Forget sources whose bucket is full again at ``now``: they cost nothing to recreate."""
        buckets = self._buckets
        while buckets:
            key = next(iter(buckets))
            tokens, last = buckets[key]
            if tokens + (now - last) * self.rate < self.burst:
                return
            del buckets[key]

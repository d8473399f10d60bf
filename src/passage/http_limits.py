"""What one client may make the HTTP front door hold, and who is let in.

:class:`HttpLimits` is the ``[http]`` table of the configuration: the timeouts
a production HTTP server has (TLS handshake, request head, idle keep-alive,
body progress, a stalled response), the connection caps (in total and per
client address) with the file descriptors kept back for the other listeners,
and the sizes of a request head. :class:`ConnectionCounts` decides, as each
connection is accepted, whether it may stay (:meth:`ConnectionCounts.admit`),
and what the client is told if not (:class:`Refusal`). The per-connection
timeouts are :mod:`passage.http_timers`.

A leaf: it imports only :mod:`passage.limiter`, does no I/O and reads no clock; the
front door (:mod:`passage.frontdoor`) counts and tells it how many file
descriptors are left.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from passage.limiter import source_key

__all__ = ["ConnectionCounts", "HttpLimits", "Refusal"]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The front door's bounds (``[http]`` table). Durations in seconds, sizes in bytes."""

    tls_handshake_timeout: float = 10.0
    """Seconds a TLS handshake may take, from the TCP connection; then it is closed."""

    request_head_timeout: float = 10.0
    """Seconds a request head (request line and headers) may take to arrive: from its first
    byte, or from the start of the connection for its first request. Then 408 and close."""

    idle_timeout: float = 60.0
    """Seconds a keep-alive connection may wait for the first byte of its next request."""

    body_timeout: float = 10.0
    """Seconds of waiting for a request body over which its pace is judged: each such window
    must bring ``body_min_rate`` × ``body_timeout`` bytes, else the connection is closed.
    Time the server is not reading (back-pressure) does not count."""

    body_min_rate: int = 1024
    """Bytes per second a request body must average over each ``body_timeout`` window."""

    write_timeout: float = 60.0
    """Seconds a response may stay stalled (the client reads none of it); then it is cut."""

    max_connections: int = 10_000
    """HTTP connections open at once, TLS handshakes and WebSockets included."""

    max_connections_per_ip: int = 2000
    """HTTP connections open at once from one client address (IPv4 address, IPv6 /64)."""

    descriptor_reserve: int = 256
    """File descriptors kept for the other listeners (TURN allocations, TURN over TCP):
    a new HTTP connection is refused while fewer than this many (and at most a quarter
    of the process's limit) are left."""

    max_request_line: int = 8190
    """Longest request line (method, target, version), in bytes; longer is 414."""

    max_header_size: int = 8190
    """Longest header line, in bytes; longer is 431."""

    max_headers: int = 100
    """Header lines in one request head; more is 431."""


class Refusal(enum.Enum):
    """Why a new connection is turned away: the reason counted and logged, and the setting."""

    DESCRIPTORS_LOW = ("descriptors_low", "descriptor_reserve")
    TOO_MANY = ("too_many_connections", "max_connections")
    TOO_MANY_FROM_SOURCE = ("too_many_connections_from_source", "max_connections_per_ip")

    def __init__(self, reason: str, setting: str) -> None:
        self.reason = reason
        self.setting = setting


class ConnectionCounts:
    """The front door's open connections, in total and per :func:`~passage.limiter.source_key`.

    :meth:`admit` each accepted connection before any work on it (a TLS
    handshake included) and :meth:`release` it exactly once when it ends.
    """

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.total = 0
        self._by_source: dict[str, int] = {}

    def admit(
        self, ip: str, descriptors_left: int | None, descriptor_limit: int | None = None
    ) -> Refusal | None:
        """Count a new connection from ``ip``, or say why it is refused (and count nothing).

        ``descriptors_left`` is how many more the process may open, of its
        ``descriptor_limit`` (None: unknown). The reserve is at most a quarter of
        the limit, so that a small limit still leaves HTTP most of it.
        """
        reserve = self.limits.descriptor_reserve
        if descriptor_limit is not None:
            reserve = min(reserve, descriptor_limit // 4)
        if descriptors_left is not None and descriptors_left < reserve:
            return Refusal.DESCRIPTORS_LOW
        if self.total >= self.limits.max_connections:
            return Refusal.TOO_MANY
        key = source_key(ip)
        held = self._by_source.get(key, 0)
        if held >= self.limits.max_connections_per_ip:
            return Refusal.TOO_MANY_FROM_SOURCE
        self._by_source[key] = held + 1
        self.total += 1
        return None

    def release(self, ip: str) -> None:
        """A connection :meth:`admit` counted has ended."""
        key = source_key(ip)
        held = self._by_source.get(key, 0)
        if held <= 0:
            raise ValueError(f"no connection from {ip} to release")
        if held == 1:
            del self._by_source[key]
        else:
            self._by_source[key] = held - 1
        self.total -= 1

    def from_source(self, ip: str) -> int:
        """Connections open now from ``ip``'s :func:`~passage.limiter.source_key`."""
        return self._by_source.get(source_key(ip), 0)
